"""`trackschema check` end to end: a scratch database is built on the test server to the
target's revision, with the target's partition declaration, and compared; the target is
only read; the scratch is dropped whatever happens; exit codes 0 / 1 / 2 from the CLI.

Each call builds a scratch database at head (a couple of seconds), so the hand changes
the issue lists share one database and one CLI run.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.conftest import admin, make_settings, run_cli
from tests.schema.invalid_index import leave_contacts_name_index_invalid
from trackschema.cli import console
from trackschema.errors import RevisionError
from trackschema.migrations import runner as migrate
from trackschema.partitions import monthly
from trackschema.runtime.provision import PostgresServer
from trackschema.runtime.settings import PARTITIONED_TABLES_ENV
from trackschema.schema import check as check_module
from trackschema.schema.catalog import Difference, snapshot_on

_roles = itertools.count()
HEAD = migrate.heads()[0].revision


def scratch_databases(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (check_module.SCRATCH_PREFIX + "\\_%",)).fetchall()
    return [r[0] for r in rows]


def hand_changes(conn: psycopg.Connection, db_url: str) -> None:
    """The issue's hand changes and more: a column, an index left INVALID by a failed
    concurrent build, a function replaced, a grant, a dropped policy, a NOT VALID check."""
    conn.execute("ALTER TABLE public.contacts ADD COLUMN nickname text")
    leave_contacts_name_index_invalid(conn, db_url)
    conn.execute("""CREATE OR REPLACE FUNCTION public.update_updated_at_column() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN NEW.updated_at := now(); RETURN NEW; END $$""")
    conn.execute("GRANT SELECT ON public.contacts TO PUBLIC")
    conn.execute("DROP POLICY analytics_reader_own ON public.analytics_clicks")
    definition = conn.execute("""SELECT pg_get_constraintdef(oid) FROM pg_constraint
                                  WHERE conname = 'context_events_source_type_check'""").fetchone()[0]  # type: ignore[index]
    conn.execute("ALTER TABLE public.context_events DROP CONSTRAINT context_events_source_type_check")
    conn.execute(sql.SQL("ALTER TABLE public.context_events ADD CONSTRAINT context_events_source_type_check {} NOT VALID").format(sql.SQL(definition)))


EXPECTED_DRIFT = {
    ("function", "public.update_updated_at_column()"),
    ("index", "public.idx_contacts_name"),
    ("policy", "public.analytics_clicks.analytics_reader_own"),
    ("column", "public.contacts.nickname"),
    ("grant", "table public.contacts TO PUBLIC"),
    ("constraint", "public.context_events.context_events_source_type_check"),
}


@pytest.mark.clock
def test_an_untouched_database_is_clean_exit_0(db_url: str) -> None:
    result = run_cli("--database-url", db_url, "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("No drift: ") and f"is what revision {HEAD} says it should be" in result.stdout
    assert result.stderr == ""


def test_hand_changes_are_found_grouped_by_object_exit_1(conn: psycopg.Connection, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    hand_changes(conn, db_url)
    result = run_cli("--database-url", db_url, "check", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["clean"] is False and report["revision"] == [HEAD]
    assert report["partitioned_tables"] == "activity_log:occurred_at,analytics_events:created_at"
    found = {(d["kind"], d["name"]): d for d in report["differences"]}
    assert set(found) == EXPECTED_DRIFT
    assert found[("column", "public.contacts.nickname")] == {
        "object": "table public.contacts", "kind": "column", "name": "public.contacts.nickname", "there": "text NULL", "should_be": None}
    index = found[("index", "public.idx_contacts_name")]
    assert index["should_be"] == "INDEX ON public.contacts USING btree (last_name, first_name)"
    assert index["there"] in (index["should_be"] + " INVALID", index["should_be"] + " INVALID (not ready)")
    function = found[("function", "public.update_updated_at_column()")]
    assert function["there"] != function["should_be"] and function["there"] and function["should_be"]
    assert found[("policy", "public.analytics_clicks.analytics_reader_own")]["there"] is None
    assert found[("grant", "table public.contacts TO PUBLIC")]["there"] == "SELECT"
    constraint = found[("constraint", "public.context_events.context_events_source_type_check")]
    assert constraint["there"] == constraint["should_be"] + " NOT VALID"

    # the human report of the same result (rendered here: another CLI run would build another scratch)
    result = check_module.CheckResult(
        database=report["database"], revisions=report["revision"], scratch_server=report["scratch_server"],
        scratch_database=report["scratch_database"], partitioned_tables=report["partitioned_tables"],
        differences=[Difference(**d) for d in report["differences"]], seconds=report["seconds"], build_seconds=report["build_seconds"])
    capsys.readouterr()
    console.print_check(result)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Drift: 6 difference(s) in 4 object(s) of ")
    contacts = lines.index("table public.contacts")  # one heading per object, its differences under it
    assert lines[contacts + 1: contacts + 10] == [
        "  column nickname", "    there      text NULL", "    should be  (missing)",
        "  index public.idx_contacts_name", f"    there      {index['there']}", f"    should be  {index['should_be']}",
        "  grant table public.contacts TO PUBLIC", "    there      SELECT", "    should be  (missing)",
    ]
    assert "function public.update_updated_at_column()" in lines and "table public.analytics_clicks" in lines


def test_check_only_reads_the_target_and_drops_its_scratch_database(conn: psycopg.Connection, db_url: str, pg_server: PostgresServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    conn.execute("ALTER TABLE public.contacts ADD COLUMN nickname text")
    before = snapshot_on(conn)
    version_before = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    result = check_module.check(make_settings(db_url))
    assert [(d.kind, d.name) for d in result.differences] == [("column", "public.contacts.nickname")]
    assert snapshot_on(conn) == before and conn.execute("SELECT version_num FROM alembic_version").fetchall() == version_before
    assert result.scratch_database.startswith("trackschema_check_") and result.build_seconds < result.seconds
    with admin(pg_server) as server:
        assert scratch_databases(server) == []

        # a failure while the scratch database is being built leaves nothing behind either
        seen: list[str] = []

        def failing_upgrade(settings: object, revision: str) -> None:
            seen.extend(scratch_databases(server))
            raise RevisionError("a migration statement failed (XX000): boom")

        monkeypatch.setattr(check_module.migrate, "upgrade", failing_upgrade)
        monkeypatch.setenv(PARTITIONED_TABLES_ENV, "activity_log")
        with pytest.raises(RevisionError, match="boom"):
            check_module.check(make_settings(db_url))
        assert len(seen) == 1 and seen[0].startswith("trackschema_check_"), "the scratch database existed during the build"
        assert scratch_databases(server) == []
        assert os.environ[PARTITIONED_TABLES_ENV] == "activity_log", "the declaration was put back"
    assert snapshot_on(conn) == before


@pytest.mark.clock
def test_rolling_partitions_are_not_drift(conn: psycopg.Connection, db_url: str) -> None:
    ensured = run_cli("--database-url", db_url, "partitions", "ensure", "--months-ahead", "7")
    assert ensured.returncode == 0, ensured.stderr
    row = conn.execute("""SELECT upper_bound FROM trackschema.partition_bounds('public.activity_log') WHERE lower_bound IS NULL""").fetchone()
    assert row is not None
    for table in ("activity_log", "analytics_events"):  # their history partitions
        retired = monthly.retire_on(conn, monthly.RetireOptions(before=row[0], action="drop", table=table))
        assert [p.partition for p in retired.partitions] == [f"{table}_history"]
    months = conn.execute("SELECT count(*) FROM trackschema.partition_bounds('public.activity_log')").fetchone()[0]  # type: ignore[index]
    assert months >= 7  # the months after the current one (which went with its history partition)
    result = check_module.check(make_settings(db_url))
    assert result.differences == [] and result.clean


def test_the_scratch_is_built_with_the_partition_declaration_the_target_recorded(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PARTITIONED_TABLES_ENV, "activity_log+default")
    migrate.upgrade(make_settings(empty_db_url), "head")
    monkeypatch.delenv(PARTITIONED_TABLES_ENV)
    with psycopg.connect(empty_db_url) as conn:
        kinds = dict(conn.execute("SELECT relname, relkind FROM pg_class WHERE relname IN ('analytics_events', 'activity_log', 'activity_log_default')").fetchall())
    assert kinds == {"analytics_events": "r", "activity_log": "p", "activity_log_default": "r"}  # not what the default declaration makes
    result = check_module.check(make_settings(empty_db_url))
    assert result.partitioned_tables == "activity_log:occurred_at+default"
    assert result.differences == []
    assert PARTITIONED_TABLES_ENV not in os.environ


@pytest.fixture
def reader_url(pg_server: PostgresServer, db_url: str) -> Iterator[str]:
    """A login role that may read everything but not create databases, and its URL to `db_url`."""
    name = f"ts_check_reader_{os.getpid()}_{next(_roles)}"
    with admin(pg_server) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD 'reader-secret'").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(name)))
    parts = urlsplit(db_url)
    yield urlunsplit(parts._replace(netloc=f"{name}:reader-secret@{parts.hostname}:{parts.port}"))
    with admin(pg_server) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_a_role_that_may_not_create_databases_is_refused_and_told_about_scratch_url(reader_url: str, pg_server: PostgresServer) -> None:
    refused = run_cli("--database-url", reader_url, "check")
    assert refused.returncode == 2 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "may not create databases" in refused.stderr and "--scratch-url" in refused.stderr
    assert "reader-secret" not in refused.stderr
    elsewhere = run_cli("--database-url", reader_url, "check", "--scratch-url", pg_server.url)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stdout.startswith("No drift: ")


def test_bad_inputs_are_one_line_exit_2(conn: psycopg.Connection, db_url: str) -> None:
    bad_url = run_cli("--database-url", db_url, "check", "--scratch-url", "postgresql://me:hunter2@db.example:99999/x")
    assert bad_url.returncode == 2 and "--scratch-url" in bad_url.stderr and "port 99999" in bad_url.stderr
    assert "hunter2" not in bad_url.stderr and len(bad_url.stderr.strip().splitlines()) == 1
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    unknown = run_cli("--database-url", db_url, "check")
    assert unknown.returncode == 2 and "9999_from_the_future" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
    assert scratch_databases(conn) == []
