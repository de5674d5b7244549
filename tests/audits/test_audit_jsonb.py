"""`audit jsonb`: promotion candidates from pg_stat_statements, or how to enable it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import create_database, make_settings, run_cli
from trackschema.migrations import runner as migrate
from trackschema.audits.jsonb import analyse, jsonb_uses
from trackschema.runtime.provision import PostgresServer, provision


@pytest.fixture(scope="module")
def pgss_url() -> Iterator[str]:
    """A server with pg_stat_statements preloaded, a database at head with the extension."""
    server: PostgresServer = provision(extra_conf={"shared_preload_libraries": "'pg_stat_statements'"})
    try:
        url = create_database(server, "jsonb_audit")
        migrate.upgrade(make_settings(url), "head")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        yield url
    finally:
        server.stop()


def test_parser_attributes_uses_to_tables_through_aliases() -> None:
    columns = {"context_events": {"metadata"}, "entities": {"data"}}
    query = "SELECT e.id FROM context_events AS e JOIN entities x ON x.data->>$1 = e.id::text WHERE e.metadata->>$2 = $3"
    assert jsonb_uses(query, columns) == {("context_events", "metadata"), ("entities", "data")}
    # A JSONB operator in the SELECT list alone is not a filter.
    assert jsonb_uses("SELECT metadata->>$1 FROM context_events", columns) == set()


def test_candidates_are_ranked_by_calls_with_sampled_keys(pgss_url: str) -> None:
    with psycopg.connect(pgss_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO context_events (context_id, created_by, title, start_at, metadata)
               SELECT gen_random_uuid(), gen_random_uuid(), 't', now(),
                      CASE WHEN g % 2 = 0 THEN '{"source": "trip", "roadmap_item_id": "x"}'::jsonb ELSE '{"source": "planner"}'::jsonb END
                 FROM generate_series(1, 200) g"""
        )
        conn.execute("SELECT pg_stat_statements_reset()")
        for _ in range(7):
            conn.execute("SELECT id FROM context_events WHERE metadata->>'source' = 'trip'").fetchall()
        for _ in range(3):
            conn.execute("SELECT id FROM entities WHERE data->>'kind' = 'x'").fetchall()
        conn.execute("SELECT metadata->>'source' FROM context_events LIMIT 1").fetchall()
        report = analyse(conn)
    assert report.available
    top, second = report.candidates[0], report.candidates[1]
    assert (top.table, top.column, top.calls) == ("context_events", "metadata", 7)
    assert (second.table, second.column, second.calls) == ("entities", "data", 3)
    assert top.common_keys[0] == ("source", 1.0) and ("roadmap_item_id", 0.5) in top.common_keys


def test_without_pg_stat_statements_it_says_how_to_enable(db_url: str) -> None:
    result = run_cli("audit", "jsonb", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["available"] is False and "shared_preload_libraries" in report["how_to_enable"]
    human = run_cli("audit", "jsonb", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert "CREATE EXTENSION pg_stat_statements" in human.stdout
