"""Retention: raw rows older than N days deleted in batches; roll-ups kept and final."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tests.analytics_helpers import click, counter_mismatches, ingest, page_view, rollup_snapshot, session, today, utc
from tests.conftest import make_settings
from trackschema.jobs import registry as jobs
from trackschema.analytics import rollups

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)


def test_retention_deletes_old_raw_rows_in_batches_and_keeps_rollups(conn: psycopg.Connection, db_url: str) -> None:
    t = today(conn)
    old1, old2, span_day, recent = t - timedelta(days=100), t - timedelta(days=95), t - timedelta(days=92), t - timedelta(days=10)
    events = [session("o1", "ivy", utc(old1, 9))] + [page_view("o1", "ivy", utc(old1, 9, m)) for m in range(3)] + [click("o1", "ivy", utc(old1, 9, 5))]
    events += [page_view("o2", "ivy", utc(old2, 9, m)) for m in range(2)]
    events += [session("span", "ivy", utc(span_day, 8)), page_view("span", "ivy", utc(span_day, 8)), page_view("span", "ivy", utc(t - timedelta(days=5), 8))]
    events += [page_view("r1", "ivy", utc(recent, 8)), page_view("r1", "ivy", utc(recent, 9)), click("r1", "ivy", utc(recent, 9))]
    assert ingest(conn, events)["rejected"] == []

    run = jobs.run(make_settings(db_url), "retention", {"days": "90", "batch_size": "2"})
    assert run.status == "succeeded", run.error
    result = run.result
    assert result is not None
    cutoff = utc(t - timedelta(days=90), 0)
    assert result["cutoff"] == cutoff.isoformat()
    # the dirty days below the cutoff were rolled up before their raw rows went
    assert result["aggregated_days"] == [old1.isoformat(), old2.isoformat(), span_day.isoformat()]
    assert result["deleted"] == {"page_views": 6, "clicks": 1, "sessions": 2, "rejects": 0}
    assert result["batches"] >= 3
    assert conn.execute("SELECT count(*) FROM analytics_page_views WHERE viewed_at < %s", (cutoff,)).fetchone() == (0,)
    assert conn.execute("SELECT session_id FROM analytics_sessions ORDER BY 1").fetchall() == [("r1",), ("span",)]
    assert counter_mismatches(conn) == []  # the spanning session lost one page view and its counter with it
    assert conn.execute(
        "SELECT date, total_sessions, total_page_views, total_clicks FROM analytics_daily_user_stats ORDER BY date"
    ).fetchall() == [(old1, 1, 3, 1), (old2, 1, 2, 0), (span_day, 1, 1, 0)]

    # older events are refused from now on; recomputing a purged day would wipe it, so it is final
    refused = ingest(conn, [page_view("o3", "ivy", utc(old2, 10))])
    assert "is before" in refused["rejected"][0]["reason"]
    before = rollup_snapshot(conn)
    assert rollups.aggregate_day(conn, old1).outcome == "final"
    conn.execute("INSERT INTO analytics_page_views (session_id, user_code, page_type, viewed_at) VALUES ('span', 'ivy', 'x', %s)",
                 (utc(span_day, 23),))  # written directly: marks a purged day dirty
    assert [(d.day, d.outcome) for d in rollups.aggregate_pending(conn, until=cutoff.date())] == [(span_day, "final")]
    assert rollup_snapshot(conn) == before
    assert rollups.dirty_days(conn, before=cutoff.date()) == []
    # a second run finds nothing more to delete
    again = jobs.run(make_settings(db_url), "retention", {"days": "90", "batch_size": "2"}).result
    assert again is not None and again["deleted"]["page_views"] == 1 and again["deleted"]["sessions"] == 0


def test_purge_refuses_to_pass_the_recorded_horizon(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match="retention horizon"):
        conn.execute("SELECT * FROM analytics_purge_raw_batch(now(), 10)")


def test_retention_rejects_bad_parameters(db_url: str) -> None:
    from trackschema.errors import TrackschemaError

    with pytest.raises(TrackschemaError, match="bad --param days 'soon'"):
        jobs.run(make_settings(db_url), "retention", {"days": "soon"})
