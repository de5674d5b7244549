"""Row-level security with real roles: insert-only ingest, owner-scoped readers, honest downgrade."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from tests.analytics_helpers import ROLLUP_TABLES, click, ingest, page_view, session, today, utc
from tests.conftest import admin, make_settings
from trackschema.migrations import runner as migrate
from trackschema.analytics import rollups
from trackschema.runtime.provision import PostgresServer

RAW_TABLES = ("analytics_sessions", "analytics_page_views", "analytics_clicks")
_names = itertools.count()


@pytest.fixture
def login_roles(pg_server: PostgresServer) -> Iterator[dict[str, str]]:
    """Cluster-wide login roles private to this test: two readers, a team role, an ingest user."""
    suffix = f"{os.getpid()}_{next(_names)}"
    names = {k: f"ts_{k}_{suffix}" for k in ("alice", "bob", "team", "loader")}
    with admin(pg_server) as conn:
        for name in names.values():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT trackschema_reader TO {}, {}").format(sql.Identifier(names["alice"]), sql.Identifier(names["bob"])))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(names["team"]), sql.Identifier(names["bob"])))
        conn.execute(sql.SQL("GRANT trackschema_ingest TO {}").format(sql.Identifier(names["loader"])))
    yield names
    with admin(pg_server) as conn:
        for name in names.values():
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _set_role(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(name)))


def test_readers_see_only_the_user_codes_they_own_raw_and_rolled_up(conn: psycopg.Connection, login_roles: dict[str, str]) -> None:
    day = today(conn) - timedelta(days=1)
    events = []
    for user in ("ann", "ben", "cat"):
        for n in range(2):
            sid = f"{user}-{n}"
            events += [session(sid, user, utc(day, 9), share="card"), page_view(sid, user, utc(day, 9)), click(sid, user, utc(day, 9))]
    assert ingest(conn, events)["rejected"] == []
    rollups.aggregate_pending(conn)
    conn.execute(
        "INSERT INTO analytics_user_code_owners (role_name, user_code) VALUES (%s, 'ann'), (%s, 'ben'), (%s, 'cat')",
        (login_roles["alice"], login_roles["bob"], login_roles["team"]),  # bob owns cat through the team role
    )
    expected = {"alice": {"ann"}, "bob": {"ben", "cat"}}
    for who, codes in expected.items():
        _set_role(conn, login_roles[who])
        for table in RAW_TABLES + ROLLUP_TABLES:
            seen = {r[0] for r in conn.execute(sql.SQL("SELECT DISTINCT user_code FROM {}").format(sql.Identifier(table))).fetchall()}
            assert seen == codes, (who, table)
        # the functions run as the caller: other users' traffic is invisible through them too
        assert conn.execute("SELECT count(*) FROM analytics_dashboard_daily('ann', %s, %s)", (day, today(conn))).fetchone() == (
            (1,) if "ann" in codes else (0,))
        assert conn.execute("SELECT sum(total_page_views) FROM analytics_daily_stats_raw('cat', %s, %s)", (day, day)).fetchone() == (
            (2,) if "cat" in codes else (None,))
        assert {r[0] for r in conn.execute("SELECT user_code FROM analytics_user_code_owners").fetchall()} == codes
        for statement in ("UPDATE analytics_sessions SET clicks = 0", "DELETE FROM analytics_daily_user_stats",
                          "INSERT INTO analytics_daily_user_stats (user_code, date) VALUES ('x', current_date)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # bookkeeping stays private
            conn.execute("SELECT * FROM trackschema.analytics_ingest_rejects")
        conn.execute("RESET ROLE")


def test_the_ingest_role_may_only_insert(conn: psycopg.Connection, login_roles: dict[str, str]) -> None:
    at = utc(today(conn), 0, 1)
    _set_role(conn, login_roles["loader"])
    result = ingest(conn, [session("i1", "ann", at), page_view("i1", "ann", at), click("i1", "ann", at), {"type": "bad"}])
    assert (result["accepted"], len(result["rejected"])) == (3, 1)
    conn.execute("INSERT INTO analytics_page_views (session_id, user_code, page_type, viewed_at) VALUES ('i1', 'ann', 'home', %s)", (at,))
    for statement in ("SELECT count(*) FROM analytics_page_views", "SELECT count(*) FROM analytics_daily_user_stats",
                      "UPDATE analytics_sessions SET clicks = 0", "DELETE FROM analytics_clicks",
                      "SELECT * FROM aggregate_analytics_daily(current_date)", "SELECT * FROM analytics_owned_user_codes()"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    conn.execute("RESET ROLE")
    # the direct insert still counted: the trigger runs as its owner
    assert conn.execute("SELECT page_views, clicks FROM analytics_sessions WHERE session_id = 'i1'").fetchone() == (2, 1)


def test_downgrade_removes_this_databases_policies_and_keeps_shared_roles(db_url: str) -> None:
    settings = make_settings(db_url)
    migrate.downgrade(settings, "0012_analytics_ingest")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_policies WHERE tablename LIKE 'analytics%'").fetchone() == (0,)
        assert conn.execute("SELECT bool_or(relrowsecurity) FROM pg_class WHERE relname LIKE 'analytics%'").fetchone() == (False,)
        assert conn.execute(
            "SELECT has_table_privilege('trackschema_reader', 'analytics_page_views', 'SELECT'), "
            "has_table_privilege('trackschema_ingest', 'analytics_page_views', 'INSERT'), "
            "has_function_privilege('trackschema_ingest', 'analytics_ingest(jsonb)', 'EXECUTE')"
        ).fetchone() == (False, False, False)
        # the roles serve the template database and its other clones: they stay
        assert conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('trackschema_ingest', 'trackschema_reader')").fetchone() == (2,)
    migrate.upgrade(settings, "head")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_policies WHERE tablename LIKE 'analytics%'").fetchone() == (11,)


def test_configured_role_names_are_created_used_and_dropped_when_unused(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = f"{os.getpid()}_{next(_names)}"
    ingest_role, reader_role = f"ts_ing_{suffix}", f"ts_read_{suffix}"
    monkeypatch.setenv("TRACKSCHEMA_ANALYTICS_INGEST_ROLE", ingest_role)
    monkeypatch.setenv("TRACKSCHEMA_ANALYTICS_READER_ROLE", reader_role)
    settings = make_settings(empty_db_url)
    migrate.upgrade(settings, "head")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT purpose, role_name FROM trackschema.analytics_roles ORDER BY 1").fetchall() == [
            ("ingest", ingest_role), ("reader", reader_role)]
        assert conn.execute("SELECT has_table_privilege(%s, 'analytics_daily_page_stats', 'SELECT')", (reader_role,)).fetchone() == (True,)
    migrate.downgrade(settings, "0012_analytics_ingest")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        # created by trackschema, referenced by no database, no members: dropped
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname IN (%s, %s)", (ingest_role, reader_role)).fetchone() == (0,)
