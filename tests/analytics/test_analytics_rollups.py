"""aggregate_analytics_daily: equal to the raw rows, idempotent, incremental, safe against in-flight ingests."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import psycopg
import pytest

from tests.analytics_helpers import DEADLINE, click, ingest, page_view, rollup_snapshot, session, today, utc, wait_until
from tests.conftest import make_settings, run_cli
from trackschema.jobs import registry as jobs
from trackschema.analytics import rollups
from trackschema.analytics.dates import db_now
from trackschema.analytics.sample import sample_batches

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)


def _load_sample(conn: psycopg.Connection, days: int = 4) -> None:
    for line in sample_batches(days=days, sessions_per_day=30, seed=11, prefix="r", batch_size=300, now=db_now(conn)):
        result = conn.execute("SELECT analytics_ingest(%s::jsonb)", (line,)).fetchone()[0]  # type: ignore[index]
        assert result["rejected"] == []


def test_rollups_equal_the_raw_rows_and_a_second_run_changes_nothing(conn: psycopg.Connection) -> None:
    _load_sample(conn)
    last_closed = today(conn) - timedelta(days=1)
    first = last_closed - timedelta(days=2)
    done = rollups.aggregate_pending(conn)
    assert [d.day for d in done] == [first, first + timedelta(days=1), last_closed]
    assert all(d.outcome == "aggregated" and d.rows_written > 0 for d in done)

    # user stats: the same numbers the raw-only function computes
    for (user,) in conn.execute("SELECT DISTINCT user_code FROM analytics_sessions").fetchall():
        rolled = conn.execute(
            """SELECT date, total_sessions, total_page_views, total_clicks, unique_share_codes
                 FROM analytics_daily_user_stats WHERE user_code = %s AND date BETWEEN %s AND %s ORDER BY date""",
            (user, first, last_closed),
        ).fetchall()
        raw = conn.execute("SELECT * FROM analytics_daily_stats_raw(%s, %s, %s)", (user, first, last_closed)).fetchall()
        assert rolled == raw and rolled
    # page, click-target and share-code roll-ups against plain GROUP BYs of the raw rows
    assert conn.execute(
        "SELECT user_code, share_code, date, page_type, view_count FROM analytics_daily_page_stats ORDER BY 1, 2, 3, 4"
    ).fetchall() == conn.execute(
        """SELECT user_code, share_code, (viewed_at AT TIME ZONE 'UTC')::date AS d, page_type, count(*)::int
             FROM analytics_page_views WHERE viewed_at < %s::date GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""",
        (today(conn),),
    ).fetchall()
    assert conn.execute(
        "SELECT user_code, share_code, date, click_target, click_count FROM analytics_daily_click_targets ORDER BY 1, 2, 3, 4"
    ).fetchall() == conn.execute(
        """SELECT user_code, share_code, (clicked_at AT TIME ZONE 'UTC')::date AS d, click_target, count(*)::int
             FROM analytics_clicks WHERE clicked_at < %s::date GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""",
        (today(conn),),
    ).fetchall()
    assert conn.execute("SELECT sum(total_sessions) FROM analytics_daily_group_stats").fetchone() == conn.execute(
        "SELECT count(*) FROM analytics_sessions WHERE first_seen < %s::date", (today(conn),)).fetchone()
    # no dirty closed day left; today stays dirty (dashboards read it raw)
    assert rollups.dirty_days(conn) == [today(conn)]

    before = rollup_snapshot(conn)
    again = rollups.aggregate_range(conn, first, last_closed)
    assert [(d.rows_written, d.rows_deleted) for d in again] == [(0, 0)] * 3
    assert rollup_snapshot(conn) == before


def test_a_late_event_reaggregates_only_its_day(conn: psycopg.Connection, db_url: str) -> None:
    _load_sample(conn)
    rollups.aggregate_pending(conn)
    states = {s.day: s.aggregated_at for s in rollups.day_states(conn, today(conn) - timedelta(days=3), today(conn))}
    late_day = today(conn) - timedelta(days=2)
    user_stats = conn.execute(
        "SELECT total_page_views, total_clicks FROM analytics_daily_user_stats WHERE user_code = 'user1' AND date = %s", (late_day,)
    ).fetchone()
    ingest(conn, [page_view("late-1", "user1", utc(late_day, 23, 59)), click("late-1", "user1", utc(late_day, 23, 59))])
    assert rollups.dirty_days(conn, before=today(conn)) == [late_day]

    run = jobs.run(make_settings(db_url), "aggregate-daily")
    assert run.status == "succeeded"
    assert [d["day"] for d in run.result["days"]] == [late_day.isoformat()]  # type: ignore[index]
    after = {s.day: s.aggregated_at for s in rollups.day_states(conn, today(conn) - timedelta(days=3), today(conn))}
    changed = [day for day in after if after[day] != states[day]]
    assert changed == [late_day]
    assert conn.execute(
        "SELECT total_page_views, total_clicks, total_sessions FROM analytics_daily_user_stats WHERE user_code = 'user1' AND date = %s",
        (late_day,),
    ).fetchone()[:2] == (user_stats[0] + 1, user_stats[1] + 1)  # type: ignore[index]
    # nothing dirty: the next run does nothing
    assert jobs.run(make_settings(db_url), "aggregate-daily").result["days"] == []  # type: ignore[index]


def test_a_late_event_moving_a_session_to_an_earlier_day_reaggregates_both_days(conn: psycopg.Connection) -> None:
    d2 = today(conn) - timedelta(days=1)
    d1 = d2 - timedelta(days=1)
    ingest(conn, [session("m1", "erin", utc(d2, 1)), page_view("m1", "erin", utc(d2, 1))])
    rollups.aggregate_range(conn, d1, d2)
    assert conn.execute("SELECT date, total_sessions FROM analytics_daily_user_stats ORDER BY date").fetchall() == [(d2, 1)]
    ingest(conn, [page_view("m1", "erin", utc(d1, 23))])  # the session now started on d1
    assert rollups.dirty_days(conn, before=today(conn)) == [d1, d2]
    rollups.aggregate_pending(conn)
    assert conn.execute("SELECT date, total_sessions, total_page_views FROM analytics_daily_user_stats ORDER BY date").fetchall() == [
        (d1, 1, 1), (d2, 0, 1)]


def test_aggregation_waits_for_an_ingest_holding_the_days_marker(db_url: str) -> None:
    """Real locks: an ingest still in flight for a day is either waited for (it holds the
    day's marker) or leaves its own marker behind; its event is never lost."""
    with psycopg.connect(db_url, autocommit=True) as setup:
        day = today(setup) - timedelta(days=1)
        ingest(setup, [page_view("w1", "fay", utc(day, 10))])  # commits a marker for `day`
    writer = psycopg.connect(db_url)  # a transaction left open
    aggregator = psycopg.connect(db_url, autocommit=True)
    try:
        ingest(writer, [page_view("w1", "fay", utc(day, 11))])  # takes FOR KEY SHARE on the marker
        outcome: list[rollups.DayAggregation] = []
        worker = threading.Thread(target=lambda: outcome.append(rollups.aggregate_day(aggregator, day)))
        worker.start()
        with psycopg.connect(db_url, autocommit=True) as watcher:
            wait_until(lambda: watcher.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (aggregator.info.backend_pid,)
            ).fetchone() == (True,), "the aggregator to wait for the in-flight ingest")
        assert worker.is_alive()
        writer.commit()
        worker.join(timeout=DEADLINE)
        assert not worker.is_alive(), "the aggregation did not finish once the ingest committed"
        assert outcome and outcome[0].raw_page_views == 2  # it saw the event committed while it waited

        # second case: no committed marker to lock; the in-flight ingest's own marker survives the run
        ingest(writer, [page_view("w1", "fay", utc(day, 12))])
        assert rollups.aggregate_day(aggregator, day).raw_page_views == 2
        writer.commit()
        assert rollups.dirty_days(aggregator) == [day]
        assert rollups.aggregate_pending(aggregator)[0].raw_page_views == 3
    finally:
        writer.close()
        aggregator.close()


def test_aggregation_refuses_repeatable_read(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with pytest.raises(psycopg.errors.RaiseException, match="READ COMMITTED"):
            conn.execute("SELECT * FROM aggregate_analytics_daily(current_date)")


def test_jobs_cli_date_and_since(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yesterday = today(conn) - timedelta(days=1)
        ingest(conn, [page_view("j1", "gus", utc(yesterday, 3))])
    env = {"TRACKSCHEMA_DATABASE_URL": db_url}
    done = run_cli("jobs", "run", "aggregate-daily", "--since", (yesterday - timedelta(days=2)).isoformat(), "--json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["result"]
    assert result["mode"] == "since" and result["aggregated"] == 3
    assert [d["raw_page_views"] for d in result["days"]] == [0, 0, 1]
    done = run_cli("jobs", "run", "aggregate-daily", "--date", "2026-13-01", env=env)
    assert done.returncode == 2 and "bad --date '2026-13-01'" in done.stderr
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT user_code, date, total_page_views FROM analytics_daily_user_stats").fetchall() == [("gus", yesterday, 1)]
