"""Upgrade, downgrade and offline SQL against a real server."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from tests.conftest import make_settings, run_cli
from trackschema.migrations import runner as migrate
from trackschema.errors import DataLossRefused, RevisionError
from trackschema.runtime.provision import find_pg_bindir


def pg_tool(name: str) -> str:
    bindir = find_pg_bindir()
    assert bindir is not None, "the tests need the PostgreSQL client binaries"
    return str(bindir / name)


def schema_dump(url: str) -> str:
    """pg_dump --schema-only, minus the lines that vary between runs."""
    out = subprocess.run([pg_tool("pg_dump"), "--schema-only", "--no-owner", "--no-privileges", url], capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))


def test_upgrade_then_downgrade_records_each_step(empty_db_url: str) -> None:
    settings = make_settings(empty_db_url)
    up = migrate.upgrade(settings, "head")
    heads = [h.revision for h in migrate.heads()]
    assert up.before == [] and up.after == heads
    assert [step["direction"] for step in up.applied] == ["upgrade"] * len(migrate.history())
    assert migrate.current_heads(settings) == heads
    down = migrate.downgrade(settings, "base")
    assert down.after == [] and len(down.applied) == len(up.applied)
    with psycopg.connect(empty_db_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN ('public', 'trackschema') AND c.relname <> 'alembic_version' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
        ).fetchone()
    assert left == (0,)


def test_head_base_head_gives_an_identical_schema(db_url: str) -> None:
    """Starts from a clone of the session's template: an empty database upgraded to head,
    once per session (test_upgrade_then_downgrade_records_each_step upgrades one itself)."""
    settings = make_settings(db_url)
    first = schema_dump(db_url)
    migrate.downgrade(settings, "base")
    migrate.upgrade(settings, "head")
    second = schema_dump(db_url)
    assert "CREATE TABLE public.entities" in first
    assert first == second


def test_offline_sql_applies_cleanly_with_psql(empty_db_url: str) -> None:
    result = migrate.upgrade(make_settings(None), "head", sql=True)
    assert result.sql and "CREATE TABLE entities" in result.sql
    assert result.sql.lstrip().startswith("SET lock_timeout")
    applied = subprocess.run(
        [pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_db_url], input=result.sql, capture_output=True, text=True
    )
    assert applied.returncode == 0, applied.stderr
    assert migrate.current_heads(make_settings(empty_db_url)) == [h.revision for h in migrate.heads()]


def test_offline_downgrade_takes_a_range_or_reads_the_current_revision(db_url: str) -> None:
    head = migrate.heads()[0].revision
    ranged = migrate.downgrade(make_settings(None), f"{head}:base", sql=True)
    assert ranged.sql and "DROP TABLE" in ranged.sql
    from_db = migrate.downgrade(make_settings(db_url), "base", sql=True)
    assert from_db.sql == ranged.sql
    with pytest.raises(RevisionError, match="needs a range"):
        migrate.downgrade(make_settings(None), "base", sql=True)


def test_unknown_revision_is_a_revision_error(empty_db_url: str) -> None:
    with pytest.raises(RevisionError, match="Can't locate revision"):
        migrate.upgrade(make_settings(empty_db_url), "feedface")
    with pytest.raises(RevisionError, match="Can't locate revision"):
        migrate.upgrade(make_settings(None), "feedface", sql=True)


CATALOG_SNAPSHOT = {
    "revision": "SELECT version_num FROM alembic_version",
    "tables": "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE n.nspname IN ('public', 'trackschema') AND c.relkind IN ('r', 'p', 'm', 'v') ORDER BY 1, 2",
    "partitions": "SELECT inhparent::regclass::text, inhrelid::regclass::text FROM pg_inherits ORDER BY 1, 2",
    "policies": "SELECT schemaname, tablename, policyname FROM pg_policies ORDER BY 1, 2, 3",
    "matviews": "SELECT schemaname, matviewname, ispopulated FROM pg_matviews ORDER BY 1, 2",
    "functions": "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                 "WHERE n.nspname IN ('public', 'trackschema') ORDER BY 1",
    "triggers": "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
}


def catalog_snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CATALOG_SNAPSHOT.items()}  # type: ignore[arg-type]


def test_downgrade_to_base_refuses_to_drop_populated_tables(db_url: str) -> None:
    """The guard that fires is the last step's (0001): the refusal comes before the first
    step, so revision, policies, materialized views and partitions stay exactly as they were."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
    before = catalog_snapshot(db_url)
    assert before["policies"] and before["matviews"] and len(before["partitions"]) >= 8
    with pytest.raises(DataLossRefused, match=r"refusing to downgrade to base, nothing was changed: refusing to drop the core schema.*--allow-data-loss"):
        migrate.downgrade(make_settings(db_url), "base")
    assert catalog_snapshot(db_url) == before
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM entity_types").fetchone() == (1,)
    migrate.downgrade(make_settings(db_url, allow_data_loss=True), "base")
    assert migrate.current_heads(make_settings(db_url)) == []


def test_a_guard_that_allow_data_loss_does_not_lift_also_refuses_up_front(db_url: str) -> None:
    """0014 refuses while moved legacy rows sit in the archive, even with --allow-data-loss."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO analytics_events_archive (id, event_type, event_data, created_at, moved_to) VALUES (gen_random_uuid(), 'page_view', '{}', now(), 'analytics_page_views')")
    before = catalog_snapshot(db_url)
    with pytest.raises(DataLossRefused, match="it holds moved legacy analytics rows; put them back first"):
        migrate.downgrade(make_settings(db_url, allow_data_loss=True), "0001_core_schema")
    assert catalog_snapshot(db_url) == before
    result = run_cli("downgrade", "base", "--allow-data-loss", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "nothing was changed" in result.stderr
    assert catalog_snapshot(db_url) == before


def test_downgrade_by_steps_and_ranges(db_url: str) -> None:
    head = migrate.current_heads(make_settings(db_url))
    with pytest.raises(RevisionError, match="a FROM:TO range is for --sql only"):
        migrate.downgrade(make_settings(db_url), f"{head[0]}:base")
    result = migrate.downgrade(make_settings(db_url), "-1")
    assert result.before == head and result.after != head and len(result.applied) == 1


def test_status_lists_pending_revisions_oldest_first(empty_db_url: str) -> None:
    settings = make_settings(empty_db_url)
    before = migrate.revision_status(settings)
    assert before.current == [] and not before.up_to_date
    assert [p.revision for p in before.pending] == [r.revision for r in reversed(migrate.history())]
    migrate.upgrade(settings, "head")
    after = migrate.revision_status(settings)
    assert after.up_to_date and after.pending == []


@pytest.mark.parametrize(("direction", "target", "sql", "message"), [
    ("upgrade", "::", True, "write the range as FROM:TO with two revisions"),
    ("upgrade", ":head", True, "write the range as FROM:TO"),
    ("upgrade", "0001_core_schema:", True, "write the range as FROM:TO"),
    ("upgrade", "head:base", True, "runs backwards: an upgrade goes from older to newer, e.g. base:head"),
    ("downgrade", "base:head", True, "runs forwards: a downgrade goes from newer to older"),
    ("upgrade", "base:head", False, "a FROM:TO range is for --sql only"),
    ("upgrade", "-1", False, "an upgrade takes +N steps"),
    ("downgrade", "+2", False, "a downgrade takes -N steps"),
    ("upgrade", "+1", True, "relative steps need a database"),
    ("upgrade", "base:feedface", True, "Can't locate revision identified by 'feedface'"),
])
def test_revision_targets_and_ranges_are_checked_before_connecting(direction: str, target: str, sql: bool, message: str) -> None:
    settings = make_settings("postgresql://nobody@127.0.0.1:1/nowhere")  # never reached
    with pytest.raises(RevisionError, match=message.replace("(", r"\(").replace("+", r"\+")):
        getattr(migrate, direction)(settings, target, sql=sql)
    assert migrate.upgrade(make_settings(None), "base:0002_updated_at_trigger", sql=True).sql
