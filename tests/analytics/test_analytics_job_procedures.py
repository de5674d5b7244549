"""The SQL entry points of aggregate-daily and retention (revision 0060), called at top
level as pg_cron calls them: same work as the CLI jobs, runs recorded, overlaps refused,
failures recorded and raised with what was done kept."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest

from tests.analytics_helpers import click, ingest, page_view, session, today, utc
from tests.conftest import make_settings, run_cli
from trackschema.jobs import registry as jobs
from trackschema.migrations import runner as migrate
from trackschema.analytics import rollups

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)


def runs(conn: psycopg.Connection, job: str) -> list[tuple]:
    return conn.execute(
        "SELECT status, params ->> 'via', result, error FROM trackschema.job_runs WHERE job = %s ORDER BY id", (job,)
    ).fetchall()


def test_aggregate_pending_procedure_rolls_up_the_dirty_closed_days_and_records_the_run(conn: psycopg.Connection, db_url: str) -> None:
    t = today(conn)
    d1, d2 = t - timedelta(days=3), t - timedelta(days=1)
    events = [session("a", "ivy", utc(d1, 9)), page_view("a", "ivy", utc(d1, 9)), page_view("a", "ivy", utc(d1, 10)),
              click("a", "ivy", utc(d1, 10)), session("b", "ivy", utc(d2, 9)), page_view("b", "ivy", utc(d2, 9)),
              session("c", "ivy", utc(t, 0, 5)), page_view("c", "ivy", utc(t, 0, 5))]
    assert ingest(conn, events)["rejected"] == []

    conn.execute("CALL trackschema.analytics_aggregate_pending()")

    [(status, via, result, error)] = runs(conn, "aggregate-daily")
    assert (status, via, error) == ("succeeded", "sql", None)
    assert result["mode"] == "dirty" and result["aggregated"] == 2 and result["final"] == []
    assert [(d["day"], d["raw_page_views"], d["raw_clicks"]) for d in result["days"]] == [(d1.isoformat(), 2, 1), (d2.isoformat(), 1, 0)]
    assert conn.execute(
        "SELECT date, total_page_views, total_clicks FROM analytics_daily_user_stats ORDER BY date"
    ).fetchall() == [(d1, 2, 1), (d2, 1, 0)]
    assert rollups.dirty_days(conn) == [t], "today is still open: its marker stays"
    # the CLI job in incremental mode is the same procedure: nothing left to do
    cli = jobs.run(make_settings(db_url), "aggregate-daily", {})
    assert cli.status == "succeeded" and cli.result == {"mode": "dirty", "aggregated": 0, "final": [], "days": []}


def test_retention_procedure_does_the_job_and_records_it(conn: psycopg.Connection) -> None:
    t = today(conn)
    old, recent = t - timedelta(days=100), t - timedelta(days=3)
    events = [session("o", "ivy", utc(old, 9))] + [page_view("o", "ivy", utc(old, 9, m)) for m in range(5)] + [click("o", "ivy", utc(old, 9, 9))]
    events += [session("r", "ivy", utc(recent, 9)), page_view("r", "ivy", utc(recent, 9))]
    assert ingest(conn, events)["rejected"] == []

    conn.execute("CALL trackschema.analytics_retention(90, 2)")

    [(status, via, result, error)] = runs(conn, "retention")
    assert (status, via, error) == ("succeeded", "sql", None)
    assert result["aggregated_days"] == [old.isoformat()], "only days before the cutoff"
    assert result["deleted"] == {"page_views": 5, "clicks": 1, "sessions": 1, "rejects": 0}
    assert result["batches"] >= 3, "batches of 2 rows"
    assert conn.execute("SELECT session_id FROM analytics_sessions").fetchall() == [("r",)]
    assert conn.execute("SELECT date, total_page_views FROM analytics_daily_user_stats").fetchall() == [(old, 5)]
    horizon = conn.execute("SELECT accept_from, purged_before FROM trackschema.analytics_raw_horizon").fetchone()
    assert horizon == (utc(t - timedelta(days=90), 0),) * 2


def test_a_run_under_way_makes_the_procedure_fail_without_changes(conn: psycopg.Connection, db_url: str) -> None:
    t = today(conn)
    assert ingest(conn, [session("a", "ivy", utc(t - timedelta(days=2), 9))])["rejected"] == []
    with psycopg.connect(db_url, autocommit=True) as cli_run:
        cli_run.execute("SELECT trackschema.job_run_begin('aggregate-daily')")  # what `jobs run` holds while it works
        with pytest.raises(psycopg.errors.LockNotAvailable, match="already running"):
            conn.execute("CALL trackschema.analytics_aggregate_pending()")
    assert conn.execute("SELECT count(*) FROM analytics_daily_user_stats").fetchone() == (0,)
    assert len(rollups.dirty_days(conn)) == 1


def test_a_failing_day_is_recorded_and_raised_and_the_days_before_it_stay_done(conn: psycopg.Connection, db_url: str) -> None:
    t = today(conn)
    d1, d2 = t - timedelta(days=3), t - timedelta(days=2)
    assert ingest(conn, [session("a", "ivy", utc(d1, 9)), page_view("a", "ivy", utc(d1, 9)),
                         session("b", "ivy", utc(d2, 9)), page_view("b", "ivy", utc(d2, 9))])["rejected"] == []
    with psycopg.connect(db_url) as holder:
        # aggregate_analytics_daily serialises per day with this advisory lock; hold d2's
        holder.execute("SELECT pg_advisory_xact_lock(1953655568, %s)", ((d2 - date(2000, 1, 1)).days,))
        conn.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute("CALL trackschema.analytics_aggregate_pending()")
        conn.execute("RESET lock_timeout")
    [(status, _, result, error)] = runs(conn, "aggregate-daily")
    assert status == "failed" and error.startswith("55P03: day " + d2.isoformat())
    assert [d["day"] for d in result["days"]] == [d1.isoformat()]
    assert conn.execute("SELECT date FROM analytics_daily_user_stats").fetchall() == [(d1,)]
    assert rollups.dirty_days(conn) == [d2], "the failed day stays dirty for the next run"


def test_procedure_refuses_bad_parameters(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="positive"):
        conn.execute("CALL trackschema.analytics_retention(0)")
    assert runs(conn, "retention") == []


def test_jobs_on_a_database_below_0060_say_which_revision_to_apply(db_url: str) -> None:
    migrate.downgrade(make_settings(db_url), "0050_table_size_history")
    for job in ("retention", "aggregate-daily"):
        out = run_cli("jobs", "run", job, env={"TRACKSCHEMA_DATABASE_URL": db_url})
        assert out.returncode == 2, out.stderr
        assert "0060_analytics_job_procedures" in out.stderr and "Traceback" not in out.stderr
