"""The legacy analytics_events rows: moved in atomic batches, archived, and rolled back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.analytics_helpers import DEADLINE, counter_mismatches, ingest, page_view, today, utc, wait_until
from tests.conftest import make_settings, run_cli
from trackschema.jobs import registry as jobs
from trackschema.migrations import runner as migrate
from trackschema.analytics import legacy, rollups

LEGACY_ROWS = """
INSERT INTO analytics_events (event_type, event_data, session_id, created_at)
SELECT (ARRAY['view', 'click', 'session', 'hover'])[1 + g %% 4],
       CASE WHEN g %% 10 = 9 THEN jsonb_build_object('page', 'home')           -- no userCode
            ELSE jsonb_build_object('userCode', 'leg' || (g %% 3), 'shareCode', 'card', 'page', 'home',
                                    'target', CASE WHEN g %% 8 = 1 THEN NULL ELSE 'phone' END, 'category', 'contact')
       END,
       CASE WHEN g %% 2 = 0 THEN 'ls' || (g %% 5) END,
       %s::timestamptz - g * interval '7 minutes'
  FROM generate_series(1, %s) AS g
"""


def _expected_mapping(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        """SELECT count(*) FILTER (WHERE event_type = 'view' AND event_data ? 'userCode'),
                  count(*) FILTER (WHERE event_type = 'click' AND event_data ? 'userCode' AND event_data ->> 'target' IS NOT NULL),
                  count(*) FILTER (WHERE event_type = 'session' AND event_data ? 'userCode'),
                  count(*)
             FROM analytics_events"""
    ).fetchone()
    assert rows is not None
    return {"page_views": rows[0], "clicks": rows[1], "sessions_only": rows[2], "total": rows[3]}


def test_move_in_batches_archives_every_row_and_restore_puts_them_back(conn: psycopg.Connection, db_url: str) -> None:
    conn.execute(LEGACY_ROWS, (utc(today(conn), 0), 60))
    original = conn.execute("SELECT id, event_type, event_data, session_id, created_at FROM analytics_events ORDER BY id").fetchall()
    expected = _expected_mapping(conn)
    # normal traffic shares a session id with the legacy rows: it must survive the rollback
    ingest(conn, [page_view("ls2", "leg2", utc(today(conn) - timedelta(days=1), 23, 59))])

    run = jobs.run(make_settings(db_url), "legacy-analytics-move", {"batch_size": "7"})
    assert run.status == "succeeded"
    result = run.result
    assert result is not None
    assert result["batches"] == 9 and result["moved"] == 60
    assert (result["page_views"], result["clicks"]) == (expected["page_views"], expected["clicks"])
    assert result["rejected"] == 60 - expected["page_views"] - expected["clicks"] - expected["sessions_only"]
    assert conn.execute("SELECT count(*) FROM analytics_events").fetchone() == (0,)
    assert conn.execute("SELECT count(*), count(moved_to), count(reject_reason) FROM analytics_events_archive").fetchone() == (
        60, 60 - result["rejected"], result["rejected"])
    reasons = {r[0] for r in conn.execute("SELECT DISTINCT reject_reason FROM analytics_events_archive WHERE reject_reason IS NOT NULL")}
    assert reasons == {"unknown legacy event type 'hover'", "no userCode in event_data", "no click target in event_data"}
    # the normalized rows keep the legacy ids; the archive keeps the legacy rows verbatim
    assert conn.execute(
        """SELECT count(*) FROM analytics_page_views p JOIN analytics_events_archive a ON a.id = p.id
            WHERE a.moved_to = 'analytics_page_views' AND p.viewed_at = a.created_at AND p.user_code = a.event_data ->> 'userCode'"""
    ).fetchone() == (expected["page_views"],)
    assert conn.execute("SELECT id, event_type, event_data, session_id, created_at FROM analytics_events_archive ORDER BY id").fetchall() == original
    assert conn.execute("SELECT count(*) FROM analytics_sessions WHERE session_id LIKE 'legacy:%'").fetchone()[0] > 0  # type: ignore[index]
    assert counter_mismatches(conn) == []
    rollups.aggregate_pending(conn)
    rolled = conn.execute("SELECT sum(total_page_views) FROM analytics_daily_user_stats WHERE user_code LIKE 'leg%'").fetchone()
    assert rolled == (expected["page_views"] + 1,)

    done = run_cli("analytics", "legacy-restore", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert done.returncode == 2 and "--yes" in done.stderr
    done = run_cli("analytics", "legacy-restore", "--yes", "--batch-size", "25", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert done.returncode == 0, done.stderr
    assert "60 legacy rows back in analytics_events in 3 batches" in " ".join(done.stdout.split())
    assert conn.execute("SELECT id, event_type, event_data, session_id, created_at FROM analytics_events ORDER BY id").fetchall() == original
    assert conn.execute("SELECT count(*) FROM analytics_events_archive").fetchone() == (0,)
    assert conn.execute("SELECT session_id, page_views FROM analytics_sessions").fetchall() == [("ls2", 1)]
    assert conn.execute("SELECT count(*) FROM trackschema.analytics_legacy_sessions").fetchone() == (0,)
    assert counter_mismatches(conn) == []
    # the restored days are dirty again, and their roll-ups lose the legacy rows
    rollups.aggregate_pending(conn)
    assert conn.execute("SELECT sum(total_page_views) FROM analytics_daily_user_stats WHERE user_code LIKE 'leg%'").fetchone() == (1,)


class BeforeEachMove:
    """The mover's connection, with a hook run before each batch: move_legacy calls
    analytics_move_legacy_events once per batch through `conn.execute`; everything else
    passes straight through."""

    def __init__(self, conn: psycopg.Connection, hook: Callable[[], None]) -> None:
        self.conn, self.hook, self.calls = conn, hook, 0

    def execute(self, query: Any, params: Any = None) -> Any:
        if "analytics_move_legacy_events" in str(query):
            self.calls += 1
            self.hook()
        return self.conn.execute(query, params)


def test_move_loses_nothing_while_legacy_rows_keep_arriving(db_url: str) -> None:
    """Legacy rows arrive while the move runs by construction: the writer has committed
    rows before it starts, and before each batch the mover waits for one more insert."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        start = utc(today(conn), 0)
        conn.execute(LEGACY_ROWS, (start, 300))
    stop = threading.Event()
    inserted = [300]
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as w:
                while not stop.is_set():
                    w.execute(LEGACY_ROWS, (start - timedelta(days=1), 10))  # old timestamps, in the moved range
                    inserted[0] += 10
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    def one_more_insert() -> None:
        target = inserted[0] + 10
        wait_until(lambda: inserted[0] >= target or failures, "the legacy writer to insert before a batch")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(lambda: inserted[0] > 300 or failures, "the legacy writer's first rows")
        with psycopg.connect(db_url, autocommit=True) as conn:
            hooked = BeforeEachMove(conn, one_more_insert)
            first = legacy.move_legacy(hooked, batch_size=20, max_batches=15)  # type: ignore[arg-type]
    finally:
        stop.set()
        thread.join(timeout=DEADLINE)
    assert not thread.is_alive() and not failures, failures
    # 15 batches of 20 move at most 300 rows; more than 300 were there before the first
    # batch, and 10 more arrived before each: rows are left for the second run
    assert first.batches == 15 and hooked.calls == 15 and inserted[0] >= 300 + 10 * 16
    with psycopg.connect(db_url, autocommit=True) as conn:
        moved = legacy.move_legacy(conn, batch_size=200)  # the rest
        left, archived, distinct = conn.execute(
            "SELECT (SELECT count(*) FROM analytics_events), count(*), count(DISTINCT id) FROM analytics_events_archive").fetchone()  # type: ignore[misc]
        assert left == 0 and archived == distinct == inserted[0]
        assert counter_mismatches(conn) == []
        assert moved.moved > 0


def test_downgrade_refuses_while_the_archive_holds_rows(conn: psycopg.Connection, db_url: str) -> None:
    conn.execute(LEGACY_ROWS, (utc(today(conn), 0), 3))
    legacy.move_legacy(conn)
    with pytest.raises(Exception, match="legacy-analytics-restore"):
        migrate.downgrade(make_settings(db_url), "0013_analytics_rls")
    legacy.restore_legacy(conn)
    migrate.downgrade(make_settings(db_url), "0013_analytics_rls")
    assert conn.execute("SELECT to_regclass('analytics_events_archive')").fetchone() == (None,)
    assert conn.execute("SELECT count(*) FROM analytics_events").fetchone() == (3,)
