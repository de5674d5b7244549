"""Revisions 0010-0014: down and up again give the same schema, offline SQL applies, CIC is idempotent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.conftest import make_settings
from trackschema.migrations import runner as migrate
from trackschema.runtime.provision import candidate_bindirs


def _tool(name: str) -> str:
    for directory in candidate_bindirs():
        if (Path(directory) / name).is_file():
            return str(Path(directory) / name)
    raise AssertionError(f"{name} not found next to the PostgreSQL server binaries")


def _schema(url: str) -> str:
    done = subprocess.run([_tool("pg_dump"), "--schema-only", "--no-owner", url], capture_output=True, text=True, timeout=60, check=True)
    # \restrict lines carry a random key per dump (pg_dump 15.14+)
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))


def test_down_to_core_and_up_again_gives_the_same_schema(db_url: str) -> None:
    before = _schema(db_url)
    settings = make_settings(db_url)
    migrate.downgrade(settings, "0001_core_schema")
    with psycopg.connect(db_url, autocommit=True) as conn:
        leftovers = conn.execute(
            """SELECT relname FROM pg_class WHERE relname LIKE 'analytics_daily%' OR relname IN ('idx_page_views_viewed_at', 'idx_clicks_clicked_at', 'idx_sessions_first_seen')
               UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE 'analytics%' OR proname LIKE 'aggregate_analytics%'"""
        ).fetchall()
        assert leftovers == []
    migrate.upgrade(settings, "head")
    assert _schema(db_url) == before


def test_offline_sql_applies_with_psql_and_matches_the_online_schema(db_url: str, empty_db_url: str) -> None:
    script = migrate.upgrade(make_settings(None), "head", sql=True).sql
    assert script and "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_page_views_viewed_at" in script
    done = subprocess.run([_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_db_url], input=script,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _schema(empty_db_url) == _schema(db_url)


def test_an_invalid_index_left_by_a_failed_build_is_rebuilt(db_url: str) -> None:
    settings = make_settings(db_url)
    migrate.downgrade(settings, "0001_core_schema")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX idx_page_views_viewed_at ON analytics_page_views (session_id)")
        conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_page_views_viewed_at'::regclass")
    migrate.upgrade(settings, "0010_analytics_time_indexes")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(
            """SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i
                WHERE i.indexrelid = 'idx_page_views_viewed_at'::regclass"""
        ).fetchone() == (True, "CREATE INDEX idx_page_views_viewed_at ON public.analytics_page_views USING btree (viewed_at)")


@pytest.mark.parametrize("name", ["Bad-Name", "x; DROP TABLE y"])
def test_bad_role_names_are_refused(empty_db_url: str, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from trackschema.errors import TrackschemaError

    monkeypatch.setenv("TRACKSCHEMA_ANALYTICS_READER_ROLE", name)
    with pytest.raises(TrackschemaError, match="bad analytics reader role name"):
        migrate.upgrade(make_settings(empty_db_url), "head")
