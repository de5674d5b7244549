"""`trackschema plan` (trackschema.migrations.plan) on a real PostgreSQL.

A throwaway revision, written to a scratch folder and chained onto the head through an extra
version location, does what the issue names: it adds a NOT NULL column with a volatile
default to `contacts` (a rewrite under ACCESS EXCLUSIVE), waits 200 ms in the same
transaction (so the lock is held visibly longer than the statement ran), then builds an
index CONCURRENTLY in an autocommit block and drops it CONCURRENTLY. One plan of it (module fixture) serves the
library assertions; the CLI runs it once more with --json and --fail-on.

The target is a clone of the template at head with contacts in it; the tests check that
plan leaves it exactly as it was and drops its scratch database.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests import revisions
from tests.conftest import make_settings, run_cli
from trackschema.migrations import plan as plan_module
from trackschema.migrations import runner as migrate
from trackschema.migrations.plan import CONFLICTS, MODES, PlanError, PlanOptions, PlanResult, blocks
from trackschema.runtime import scratch
from trackschema.runtime.provision import PostgresServer
from trackschema.runtime.settings import mask_password

# One worker runs the whole module (--dist loadgroup): its module fixtures (the probe
# revision, the seeded target, the rehearsal `planned`) are built once, not on both workers.
pytestmark = pytest.mark.xdist_group("plan")

HEAD = migrate.heads()[0].revision
PROBE = "9101_plan_probe"
ADD_COLUMN = "ALTER TABLE contacts ADD COLUMN plan_probe_at timestamptz NOT NULL DEFAULT clock_timestamp()"
BUILD_INDEX = "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_contacts_plan_probe ON contacts (plan_probe_at)"
DROP_INDEX = "DROP INDEX CONCURRENTLY idx_contacts_plan_probe"
SLEEP = 0.2
CONTACTS = 20

SEED = f"""
INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact');
WITH people AS (SELECT g, uuid_generate_v7() AS id FROM generate_series(1, {CONTACTS}) AS g),
ins AS (INSERT INTO entities (id, entity_type_id) SELECT id, (SELECT id FROM entity_types) FROM people)
INSERT INTO contacts (id, first_name, last_name, email)
SELECT id, CASE WHEN g = 7 THEN NULL ELSE 'Ada' || g END, 'Lovelace', 'ada' || g || '@example.com' FROM people;
"""


def write_revision(directory: Path, revision: str, body: str) -> list[str]:
    """A revision file `revision` chained onto the head, whose upgrade() is `body`."""
    return [revisions.scratch_revision(directory, revision, upgrade_code=body, doc=f"{revision} (test only).")]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return write_revision(tmp_path_factory.mktemp("plan") / "versions", PROBE, f"""
        op.execute("{ADD_COLUMN}")
        op.execute("SELECT pg_sleep({SLEEP})")
        with op.get_context().autocommit_block():
            op.execute("{BUILD_INDEX}")
            op.execute("{DROP_INDEX}")
    """)


@pytest.fixture(scope="module")
def target_url(pg_server: PostgresServer, template: Any) -> Iterator[str]:
    """A database at head (a clone of the session's template, whose `current()` names it)
    with contacts in it, for this module."""
    with scratch.scratch_database(pg_server.url, f"ts_plan_{os.getpid()}", template=template.current()) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SEED)
        yield url


def fingerprint(url: str) -> dict[str, Any]:
    """What plan must not change: the revision, every relation (and its storage), column,
    constraint and index, and the rows of contacts."""
    with psycopg.connect(url, autocommit=True) as conn:
        def rows(query: str) -> list[tuple[Any, ...]]:
            return sorted(conn.execute(query).fetchall(), key=repr)

        user = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
        return {
            "version": rows("SELECT version_num FROM alembic_version"),
            "relations": rows(f"SELECT c.oid::int8, n.nspname, c.relname, c.relkind, c.relfilenode::int8 FROM pg_class c "
                              f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user}"),
            "columns": rows(f"SELECT c.relname, a.attname, a.atttypid::int8, a.attnotnull FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user} AND a.attnum > 0"),
            "constraints": rows("SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint"),
            "indexes": rows("SELECT indexrelid::regclass::text, indisvalid FROM pg_index"),
            "contacts": rows("SELECT id::text, first_name, updated_at::text FROM contacts"),
        }


def scratch_databases(server: PostgresServer, name: str | None = None) -> list[str]:
    """Scratch databases left on the server by plans this process ran (their names carry the
    pid of the process that ran plan), or the one named `name`."""
    with scratch.admin(server.url) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    return [n for n in names if n == name or (name is None and n.startswith(f"trackschema_plan_{os.getpid()}_"))]


@pytest.fixture(scope="module")
def planned(target_url: str, probe: list[str]) -> tuple[PlanResult, dict[str, Any], dict[str, Any]]:
    before = fingerprint(target_url)
    result = plan_module.plan(make_settings(target_url), "head", PlanOptions(sample_rows=5), extra_version_locations=probe)
    return result, before, fingerprint(target_url)


def statement(result: PlanResult, text: str) -> plan_module.StatementTrace:
    found = [s for s in result.statements() if s.sql_excerpt.startswith(text[:60])]
    assert len(found) == 1, [s.sql_excerpt for s in result.statements()]
    return found[0]


def test_a_volatile_default_is_a_rewrite_under_access_exclusive_held_until_commit(planned: tuple[PlanResult, Any, Any]) -> None:
    result, _, _ = planned
    assert result.current == [HEAD] and result.pending == [PROBE]
    add = statement(result, ADD_COLUMN)
    assert add.index == 1 and add.transaction == "revision" and add.observed == "same session"
    contacts = [lock for lock in add.locks if lock.relation == "contacts"]
    assert len(contacts) == 1
    lock = contacts[0]
    assert (lock.kind, lock.mode, lock.blocks, lock.rewritten) == ("table", "ACCESS EXCLUSIVE", "reads and writes", True)
    assert add.blocks == "reads and writes"
    # held from the ALTER until the revision's COMMIT: its own run and the 200 ms the revision then slept
    assert lock.held_seconds >= add.duration + SLEEP - 0.001
    # the rewrite rebuilt every index of contacts too (new relfilenodes)
    indexes = {lock.relation for lock in add.locks if lock.table == "contacts"}
    assert {"contacts_pkey", "idx_contacts_name", "idx_contacts_email"} <= indexes
    assert all(lock.rewritten and lock.kind == "index" for lock in add.locks if lock.table == "contacts")
    # the sleep took no lock on a relation of the schema
    assert statement(result, "SELECT pg_sleep").locks == []


def test_create_index_concurrently_blocks_neither_reads_nor_writes(planned: tuple[PlanResult, Any, Any]) -> None:
    result, _, _ = planned
    build = statement(result, BUILD_INDEX)
    assert build.transaction == "autocommit" and build.observed == "second session"
    # seen from the second session while the build ran; the new index itself is not reported
    assert [(lock.relation, lock.mode, lock.blocks, lock.rewritten) for lock in build.locks] == [
        ("contacts", "SHARE UPDATE EXCLUSIVE", "nothing", False)
    ]
    assert build.blocks == "nothing"
    assert 0 < build.locks[0].held_seconds <= build.duration
    # dropping it: SHARE UPDATE EXCLUSIVE on the table; its last step locks an index no query opens any more
    drop = statement(result, DROP_INDEX)
    assert drop.observed == "second session"
    assert [(lock.relation, lock.mode, lock.blocks) for lock in drop.locks if lock.table is None] == [
        ("contacts", "SHARE UPDATE EXCLUSIVE", "nothing")
    ]
    assert drop.blocks == "nothing"


def test_the_target_is_only_read_and_the_scratch_database_is_dropped(planned: tuple[PlanResult, Any, Any], pg_server: PostgresServer) -> None:
    result, before, after = planned
    assert after == before
    assert result.scratch is not None and f"/trackschema_plan_{os.getpid()}_" in result.scratch
    assert scratch_databases(pg_server) == []
    # contacts were named by the revision; their entities and entity type follow the foreign keys
    assert result.sampled == {"contacts": 5, "entities": 5, "entity_types": 1}
    assert result.warnings == []
    assert {"build", "sample", "rehearsal", "total"} <= set(result.seconds)


def test_fail_on_names_the_statements_whose_locks_it_lists(planned: tuple[PlanResult, Any, Any]) -> None:
    result, _, _ = planned
    hits = plan_module.failing(result, ("access-exclusive",))
    assert [(h.revision, h.index, h.relations[0], h.reasons) for h in hits] == [(PROBE, 1, "contacts", ("ACCESS EXCLUSIVE",))]
    assert [h.index for h in plan_module.failing(result, ("share-update-exclusive",))] == [3, 4]
    assert [h.index for h in plan_module.failing(result, ("rewrite", "blocks-writes"))] == [1]
    assert plan_module.failing(result, ("share", "exclusive")) == []


def test_the_table_shows_one_row_per_blocking_lock(planned: tuple[PlanResult, Any, Any], capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The human rendering: the rewrite with its indexes folded into the table's row, the
    concurrent build marked as seen from a second session, the sleep only counted."""
    from trackschema.cli import console

    monkeypatch.setattr(console.out, "width", 160)
    console.print_plan(planned[0])
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert len(rows) == 3, text
    assert all(word in rows[0] for word in ("ALTER TABLE contacts", "contacts", "ACCESS EXCLUSIVE", "reads and writes", "yes +3 idx"))
    assert all(word in rows[1] for word in ("CREATE INDEX CONCURRENTLY", "contacts", "SHARE UPDATE EXCLUSIVE*", "nothing"))
    assert "Not shown: 1 statement(s) without such a lock" in text


def test_the_conflict_table_is_what_the_server_does(empty_db_url: str) -> None:
    """Every pair of modes against LOCK ... NOWAIT, and for each mode held, whether a plain
    read (SELECT) and a plain write (INSERT) of another session get through: what `blocks`
    says, from the server itself."""
    assert all((b in CONFLICTS[a]) == (a in CONFLICTS[b]) for a in MODES.values() for b in MODES.values())
    with psycopg.connect(empty_db_url, autocommit=True) as setup:
        setup.execute("CREATE TABLE plan_locks (id int)")
    with psycopg.connect(empty_db_url) as holder, psycopg.connect(empty_db_url) as other:
        other.execute("SET lock_timeout = '50ms'")
        other.commit()
        for held in MODES.values():
            holder.execute(sql.SQL("LOCK TABLE plan_locks IN {} MODE").format(sql.SQL(held)))
            for wanted in MODES.values():
                try:
                    other.execute(sql.SQL("LOCK TABLE plan_locks IN {} MODE NOWAIT").format(sql.SQL(wanted)))
                    conflict = False
                except psycopg.errors.LockNotAvailable:
                    conflict = True
                other.rollback()
                assert conflict == (wanted in CONFLICTS[held]), (held, wanted)
            blocked = []
            for what, statement_text in (("reads", "SELECT count(*) FROM plan_locks"), ("writes", "INSERT INTO plan_locks VALUES (1)")):
                try:
                    other.execute(statement_text)
                except psycopg.errors.LockNotAvailable:
                    blocked.append(what)
                other.rollback()
            assert blocks(held) == (" and ".join(blocked) or "nothing"), held
            holder.rollback()


def test_a_revision_that_fails_in_the_rehearsal_names_it_and_the_scratch_database_goes(
    target_url: str, tmp_path: Path, pg_server: PostgresServer
) -> None:
    """The sample carries the contact without a first name, so SET NOT NULL fails there as it
    would on the target: exit 1 naming the revision and statement; nothing is left behind."""
    locations = write_revision(tmp_path / "versions", "9102_plan_fails", """
        op.execute("ALTER TABLE contacts ALTER COLUMN first_name SET NOT NULL")
    """)
    before = fingerprint(target_url)
    with pytest.raises(PlanError) as failed:
        plan_module.plan(make_settings(target_url), "head", PlanOptions(sample_rows=CONTACTS), extra_version_locations=locations)
    message = str(failed.value)
    assert failed.value.exit_code == 1
    assert "9102_plan_fails" in message and "#1" in message and "SET NOT NULL" in message and "null values" in message
    assert scratch_databases(pg_server) == []
    assert fingerprint(target_url) == before


def run_plan_cli(monkeypatch: pytest.MonkeyPatch, locations: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`trackschema ARGS` (in-process, `run_cli`) whose plan also reads the revisions in `locations`."""
    monkeypatch.setattr(plan_module, "plan", functools.partial(plan_module.plan, extra_version_locations=locations))
    return run_cli(*args, timeout=180)


def test_cli_json_and_fail_on_access_exclusive(target_url: str, probe: list[str], pg_server: PostgresServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_plan_cli(monkeypatch, probe, "--database-url", target_url, "plan", "--json", "--fail-on", "access-exclusive",
                          "--sample-rows", "3", "--scratch-url", pg_server.url)
    assert result.returncode == 1, result.stderr
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert error[0].startswith("error: --fail-on access-exclusive: 1 statement(s) hit it:")
    assert f"{PROBE} #1 ACCESS EXCLUSIVE on contacts" in error[0] and ADD_COLUMN in error[0]
    data = json.loads(result.stdout)
    assert set(data) == {"database", "current", "target", "pending", "scratch", "sample_rows", "sampled", "warnings",
                         "seconds", "revisions", "fail_on", "failing"}
    assert data["pending"] == [PROBE] and data["sample_rows"] == 3 and data["fail_on"] == ["access-exclusive"]
    assert data["failing"] == [{"revision": PROBE, "index": 1, "sql": ADD_COLUMN, "reasons": ["ACCESS EXCLUSIVE"],
                                "relations": ["contacts", "contacts_pkey", "idx_contacts_email", "idx_contacts_name"]}]
    [revision] = data["revisions"]
    assert set(revision) == {"revision", "description", "seconds", "statements"}
    first = revision["statements"][0]
    assert set(first) == {"revision", "index", "sql", "duration", "transaction", "observed", "blocks", "locks"}
    assert set(first["locks"][0]) == {"relation", "kind", "mode", "blocks", "rewritten", "held_seconds", "target_bytes", "table"}
    assert (first["locks"][0]["relation"], first["locks"][0]["mode"], first["locks"][0]["rewritten"]) == ("contacts", "ACCESS EXCLUSIVE", True)
    assert [s["blocks"] for s in revision["statements"]] == ["reads and writes", "nothing", "nothing", "nothing"]
    assert data["scratch"].startswith(mask_password(pg_server.url).rsplit("/", 1)[0] + "/trackschema_plan_")  # made where --scratch-url says
    assert scratch_databases(pg_server, data["scratch"].rsplit("/", 1)[1]) == []


def test_cli_at_head_has_nothing_pending(target_url: str) -> None:
    result = run_cli("--database-url", target_url, "plan", "--fail-on", "access-exclusive")
    assert result.returncode == 0, result.stderr
    assert "Nothing pending" in result.stdout and HEAD in result.stdout


def test_cli_refuses_in_one_line_when_the_role_may_not_create_databases(empty_db_url: str, pg_server: PostgresServer) -> None:
    role = f"ts_plan_nocreatedb_{os.getpid()}"
    with scratch.admin(pg_server.url) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD 'hunter2'").format(sql.Identifier(role)))
    try:
        url = make_url(empty_db_url).set(username=role, password="hunter2").render_as_string(hide_password=False)
        result = run_cli("--database-url", url, "plan")
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr and "hunter2" not in result.stderr + result.stdout
        assert f"{role} may not create databases" in lines[0] and "--scratch-url" in lines[0]
    finally:
        with scratch.admin(pg_server.url) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_scratch_database_is_partitioned_as_the_target_recorded(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A target whose 0030 partitioned no table (TRACKSCHEMA_PARTITIONED_TABLES=none) is
    rehearsed on a scratch database built the same way, not with today's default."""
    from trackschema.runtime.settings import PARTITIONED_TABLES_ENV

    monkeypatch.setenv(PARTITIONED_TABLES_ENV, "none")
    migrate.upgrade(make_settings(empty_db_url), "0040_materialized_views")
    monkeypatch.delenv(PARTITIONED_TABLES_ENV)
    built_with: list[str | None] = []
    upgrade = migrate.upgrade

    def recording(settings: Any, revision: str, **kwargs: Any) -> Any:
        if settings.database_url != empty_db_url:  # the scratch database's build
            built_with.append(os.environ.get(PARTITIONED_TABLES_ENV))
        return upgrade(settings, revision, **kwargs)

    monkeypatch.setattr(plan_module.migrate, "upgrade", recording)
    result = plan_module.plan(make_settings(empty_db_url), "0050_table_size_history", PlanOptions(sample_rows=0))
    assert built_with == ["none"] and os.environ.get(PARTITIONED_TABLES_ENV) is None
    assert [r.revision for r in result.revisions] == ["0050_table_size_history"]
