"""The status page: revision, invalid indexes, largest tables and their growth."""

from __future__ import annotations

import json

import psycopg

from tests.conftest import make_settings, run_cli
from trackschema import status
from trackschema.jobs import registry as jobs


def test_growth_comes_from_a_snapshot_a_day_old(conn: psycopg.Connection, db_url: str) -> None:
    conn.execute("INSERT INTO analytics_events (event_type, event_data) SELECT 'view', '{}' FROM generate_series(1, 20000)")
    conn.execute("ANALYZE analytics_events")
    jobs.run(make_settings(db_url), "table-sizes")
    # Pretend the snapshot was taken yesterday, then grow the table.
    conn.execute("UPDATE trackschema.table_size_snapshots SET taken_at = taken_at - interval '1 day'")
    before = conn.execute("SELECT total_bytes FROM trackschema.table_size_snapshots WHERE table_name = 'analytics_events'").fetchone()[0]  # type: ignore[index]
    conn.execute("INSERT INTO analytics_events (event_type, event_data) SELECT 'view', '{}' FROM generate_series(1, 20000)")
    page = status.collect(make_settings(db_url))
    events = next(t for t in page.largest_tables if t.table == "analytics_events")
    # analytics_events may be partitioned by now: its size is the sum of its partitions.
    now_bytes = conn.execute(
        """SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('analytics_events') WHERE isleaf),
                           pg_total_relation_size('analytics_events'))::bigint"""
    ).fetchone()[0]  # type: ignore[index]
    assert events.total_bytes == now_bytes > before
    assert events.growth_bytes_per_day is not None
    assert abs(events.growth_bytes_per_day - (now_bytes - before)) / (now_bytes - before) < 0.01


def test_status_reports_an_invalid_index(conn: psycopg.Connection, db_url: str) -> None:
    conn.execute("INSERT INTO entity_types (name, display_name, description) VALUES ('a', 'A', 'x'), ('b', 'B', 'x')")
    try:
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY entity_types_description_key ON entity_types (description)")
    except psycopg.errors.UniqueViolation:
        pass
    result = run_cli("status", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    assert [i["index"] for i in page["invalid_indexes"]] == ["entity_types_description_key"]
    assert page["up_to_date"] is True


def test_status_shows_queue_depth_and_the_oldest_unfinished_event(conn: psycopg.Connection, db_url: str) -> None:
    conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
    conn.execute("INSERT INTO entities (entity_type_id) SELECT id FROM entity_types, generate_series(1, 3)")
    page = json.loads(run_cli("status", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url}).stdout)
    queued = conn.execute("SELECT count(*) FROM event_queue WHERE status = 'pending'").fetchone()[0]  # type: ignore[index]
    assert queued == 3 and page["queue"]["by_status"]["pending"] == 3
    assert page["queue"]["oldest_pending_seconds"] is not None
    human = run_cli("status", env={"TRACKSCHEMA_DATABASE_URL": db_url}).stdout
    assert "Queue" in human and "pending 3" in human
