"""The promotion revisions: gates (online and in offline SQL), constraints NOT VALID then
VALIDATE, indexes CONCURRENTLY (an INVALID one rebuilt), switch, contract and its rollback,
the stages `trackschema status` derives, and an identical schema after head → base → head."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from tests.conftest import make_settings, run_cli
from tests.promotion_helpers import (  # noqa: F401 - fixtures
    CONTRACT, EXPAND, SWITCH, VALIDATE, diverged, econn, expanded_db_url, expanded_template, limit_inline_fill, load_legacy_rows, unfilled,
)
from trackschema.migrations import runner as migrate
from trackschema.promotions import backfill, stages as promotion_stages
from trackschema.promotions.backfill import BackfillOptions
from trackschema.promotions.declarations import PROMOTIONS
from trackschema.runtime.provision import PostgresServer, find_pg_bindir


def at(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]  # type: ignore[index]


def stages(url: str) -> dict[str, dict]:
    """Each promotion's stage as `trackschema status --json` reports it."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {s.name: s.to_dict() for s in promotion_stages.stages(conn)}


def constraint_state(conn: psycopg.Connection) -> dict[str, bool]:
    return dict(conn.execute(
        "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'context_events'::regclass AND conname LIKE 'context_events_source%'"
    ).fetchall())


def index_state(conn: psycopg.Connection) -> dict[str, bool]:
    return dict(conn.execute(
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_index WHERE indrelid = 'context_events'::regclass "
        "AND indexrelid::regclass::text LIKE 'idx_context_events_source%'"
    ).fetchall())


def test_validate_refuses_above_the_gate_and_succeeds_after_the_backfill(expanded_db_url: str, econn: psycopg.Connection) -> None:
    limit_inline_fill(econn, 100)
    load_legacy_rows(econn, 3_000)
    env = {"TRACKSCHEMA_DATABASE_URL": expanded_db_url}
    assert {s["stage"] for s in stages(expanded_db_url).values()} == {"expanded"}
    refused = run_cli("upgrade", VALIDATE, env=env)
    assert refused.returncode == 2
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "refusing to validate" in message and "context_events.source_type is 100.0% NULL" in message
    assert "run `trackschema backfill run source_type source_roadmap_item_id source_itinerary_item_id`" in message
    assert at(econn) == EXPAND and constraint_state(econn) == {} and index_state(econn) == {}

    def stop_early(p: backfill.BackfillProgress) -> None:
        if p.batches == 2:
            raise KeyboardInterrupt

    try:
        backfill.run(make_settings(expanded_db_url), None, BackfillOptions(batch_time=0.02, first_batch_rows=200), stop_early)
    except KeyboardInterrupt:
        pass
    partial = stages(expanded_db_url)["source_type"]
    assert partial["stage"] == "backfilling" and 0 < partial["percent"] < 100
    backfill.run(make_settings(expanded_db_url), None, BackfillOptions(batch_time=0.05))
    assert {s["stage"] for s in stages(expanded_db_url).values()} == {"backfilled"}
    done = run_cli("upgrade", VALIDATE, env=env)
    assert done.returncode == 0, done.stderr
    assert at(econn) == VALIDATE
    assert constraint_state(econn) == {"context_events_source_type_check": True, "context_events_source_roadmap_item_id_fkey": True}
    assert index_state(econn) == {p.index: True for p in PROMOTIONS}
    assert {s["stage"] for s in stages(expanded_db_url).values()} == {"validated"}


def test_a_small_table_is_filled_inline_by_the_revision(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 400)
    assert unfilled(econn) > 0
    migrate.upgrade(make_settings(expanded_db_url), VALIDATE)
    assert unfilled(econn) == 0 and diverged(econn, reference_checked=True) == 0
    assert econn.execute("SELECT count(*) FROM trackschema.promotion_rejects").fetchone()[0] == 6  # type: ignore[index]


def test_an_invalid_index_left_by_a_failed_build_is_rebuilt(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 200, bad=False)
    migrate.upgrade(make_settings(expanded_db_url), VALIDATE)
    migrate.downgrade(make_settings(expanded_db_url), EXPAND)
    # A concurrent build that fails (duplicates under UNIQUE) leaves an INVALID index behind.
    try:
        econn.execute("CREATE UNIQUE INDEX CONCURRENTLY idx_context_events_source_type ON context_events (source_type) WHERE source_type IS NOT NULL")
    except psycopg.errors.UniqueViolation:
        pass
    assert index_state(econn) == {"idx_context_events_source_type": False}
    migrate.upgrade(make_settings(expanded_db_url), VALIDATE)
    assert index_state(econn) == {p.index: True for p in PROMOTIONS}
    unique = econn.execute("SELECT indisunique FROM pg_index WHERE indexrelid = 'idx_context_events_source_type'::regclass").fetchone()
    assert unique == (False,)


def test_switch_and_contract_and_rolling_back(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 300)
    settings = make_settings(expanded_db_url)
    migrate.upgrade(settings, SWITCH)
    assert {n: s["stage"] for n, s in stages(expanded_db_url).items()} == {p.name: "switched" for p in PROMOTIONS}
    assert all(constraint_state(econn)[p.in_step_constraint] for p in PROMOTIONS)
    migrate.upgrade(settings, CONTRACT)
    assert {s["stage"] for s in stages(expanded_db_url).values()} == {"contracted"}
    # Writers after contract: column-only (the new code) and JSON-only (a straggler).
    item = econn.execute("SELECT id::text FROM roadmap_items LIMIT 1").fetchone()[0]  # type: ignore[index]
    column_only = econn.execute(
        "INSERT INTO context_events (context_id, created_by, title, start_at, source_type, source_roadmap_item_id) "
        "VALUES (gen_random_uuid(), gen_random_uuid(), 'new', now(), 'planner', %s) RETURNING id", (item,)).fetchone()[0]  # type: ignore[index]
    json_only = econn.execute(
        "INSERT INTO context_events (context_id, created_by, title, start_at, metadata) "
        "VALUES (gen_random_uuid(), gen_random_uuid(), 'old', now(), '{\"source\": \"trip\"}') RETURNING id").fetchone()[0]  # type: ignore[index]
    assert diverged(econn, reference_checked=True) == 2
    migrate.downgrade(settings, SWITCH)  # the rollback path: dual-write back, drifted rows resynced
    assert diverged(econn, reference_checked=True) == 0
    md = econn.execute("SELECT metadata FROM context_events WHERE id = %s", (column_only,)).fetchone()[0]  # type: ignore[index]
    assert md == {"source": "planner", "roadmap_item_id": item}
    assert econn.execute("SELECT source_type FROM context_events WHERE id = %s", (json_only,)).fetchone() == ("trip",)
    assert all(constraint_state(econn)[p.in_step_constraint] for p in PROMOTIONS)
    assert {s["stage"] for s in stages(expanded_db_url).values()} == {"switched"}


def test_switch_refuses_while_rows_are_not_promoted(expanded_db_url: str, econn: psycopg.Connection) -> None:
    limit_inline_fill(econn, 100)
    load_legacy_rows(econn, 1_000)
    backfill.run(make_settings(expanded_db_url), None, BackfillOptions(batch_time=0.05))
    migrate.upgrade(make_settings(expanded_db_url), VALIDATE)
    # 750 rows lose their promoted value behind the trigger's back: above the inline limit.
    econn.execute("ALTER TABLE context_events DISABLE TRIGGER context_events_promote_metadata")
    econn.execute("UPDATE context_events SET source_type = NULL")
    econn.execute("ALTER TABLE context_events ENABLE TRIGGER context_events_promote_metadata")
    refused = run_cli("upgrade", SWITCH, env={"TRACKSCHEMA_DATABASE_URL": expanded_db_url})
    assert refused.returncode == 2 and "refusing to switch" in refused.stderr and "backfill run" in refused.stderr
    assert at(econn) == VALIDATE


def _psql(server: PostgresServer) -> str:
    bindir = find_pg_bindir()
    assert bindir is not None
    return str(Path(bindir) / "psql")


def test_offline_sql_applies_and_keeps_the_gate(pg_server: PostgresServer, expanded_db_url: str, empty_db_url: str, econn: psycopg.Connection) -> None:
    full = run_cli("upgrade", "head", "--sql")
    assert full.returncode == 0, full.stderr
    assert "DO $gate$" in full.stdout and "CREATE INDEX CONCURRENTLY IF NOT EXISTS" in full.stdout
    applied = subprocess.run([_psql(pg_server), "-v", "ON_ERROR_STOP=1", "-q", "-d", empty_db_url], input=full.stdout,
                             capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert at(conn) == migrate.heads()[0].revision
    # The same script, offline, against a database with unpromoted rows: the server refuses.
    limit_inline_fill(econn, 100)
    load_legacy_rows(econn, 1_000)
    step = run_cli("upgrade", f"{EXPAND}:{VALIDATE}", "--sql")
    refused = subprocess.run([_psql(pg_server), "-v", "ON_ERROR_STOP=1", "-q", "-d", expanded_db_url], input=step.stdout,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "refusing to validate" in refused.stderr
    assert at(econn) == EXPAND and constraint_state(econn) == {}


def _schema(url: str) -> str:
    bindir = find_pg_bindir()
    assert bindir is not None
    dump = subprocess.run([str(Path(bindir) / "pg_dump"), "--schema-only", "--no-owner", url], capture_output=True, text=True, check=True)
    return "\n".join(line for line in dump.stdout.splitlines() if not line.startswith(("--", "\\restrict", "\\unrestrict")))


def test_head_to_base_to_head_gives_the_same_schema(db_url: str) -> None:
    """From a clone of the session's template (an empty database upgraded to head once per
    session) down to 0001 and back."""
    settings = make_settings(db_url)
    first = _schema(db_url)
    migrate.downgrade(settings, "0001_core_schema")
    with psycopg.connect(db_url, autocommit=True) as conn:
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE (proname LIKE '%promot%' OR proname LIKE 'jsonb_promot%') "
            "AND pronamespace <> 'pg_catalog'::regnamespace").fetchone()
        assert leftovers == (0,)
    migrate.upgrade(settings, "head")
    assert _schema(db_url) == first


def test_every_sql_file_is_named_by_a_revision() -> None:
    """Versioned SQL files are installed by name from revisions (never edited afterwards)."""
    root = Path(__file__).resolve().parents[2]
    revisions = "\n".join(p.read_text() for p in (root / "alembic" / "versions").glob("*.py"))
    for path in (root / "sql").rglob("*.sql"):
        assert f'"{path.relative_to(root / "sql").as_posix()}"' in revisions, path
