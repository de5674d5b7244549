"""Daily roll-ups: `aggregate_analytics_daily(day)` for one day, a range, or the dirty days.

Each day is aggregated in its own transaction (the connection must be in autocommit mode
and at READ COMMITTED, which the SQL function checks). Rebuilding a day is idempotent, so
any of these can be rerun safely.

Incremental mode (`aggregate_pending`): the raw tables' statement triggers mark every UTC
day they write in `trackschema.analytics_dirty_days`; a run aggregates exactly the closed
days (before today, UTC) that carry a marker, so a late event re-aggregates its own day
and untouched days are left alone. Today stays dirty until it is over; dashboards read it
from the raw rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime

import psycopg

from trackschema.analytics.dates import days_between
from trackschema.runtime.db import require_routine
from trackschema.errors import TrackschemaError

JOB_PROCEDURES_REVISION = "0060_analytics_job_procedures"


@dataclass(frozen=True)
class DayAggregation:
    """One run of aggregate_analytics_daily: `outcome` is `aggregated`, or `final` for a day
    whose raw rows retention has purged (its roll-ups are kept as they are)."""

    day: date
    outcome: str
    raw_sessions: int
    raw_page_views: int
    raw_clicks: int
    rows_written: int
    rows_deleted: int

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        return data


@dataclass(frozen=True)
class DayState:
    """What the bookkeeping says about one day."""

    day: date
    dirty_markers: int
    aggregated_at: datetime | None


def aggregate_day(conn: psycopg.Connection, day: date) -> DayAggregation:
    """Rebuild the four roll-ups of `day` from the raw rows, in one transaction."""
    if not conn.autocommit:
        raise TrackschemaError("aggregate_day needs an autocommit connection: each day is its own transaction")
    row = conn.execute("SELECT * FROM aggregate_analytics_daily(%s)", (day,)).fetchone()
    assert row is not None
    return DayAggregation(*row)


def dirty_days(conn: psycopg.Connection, before: date | None = None) -> list[date]:
    """Days with a dirty marker, oldest first (only those before `before` when given)."""
    rows = conn.execute(
        """SELECT DISTINCT day FROM trackschema.analytics_dirty_days
            WHERE %(before)s::date IS NULL OR day < %(before)s ORDER BY day""",
        {"before": before},
    ).fetchall()
    return [r[0] for r in rows]


def aggregate_pending(conn: psycopg.Connection, until: date | None = None) -> list[DayAggregation]:
    """Aggregate every dirty day before `until` (default: today, UTC), oldest first, a
    transaction per day, through the procedure pg_cron runs for the `aggregate-daily` job
    (`trackschema.analytics_aggregate_pending`, which the caller's run record covers here).
    A day that fails raises; the days before it stay aggregated."""
    if not conn.autocommit:
        raise TrackschemaError("aggregate_pending needs an autocommit connection: each day is its own transaction")
    require_routine(conn, "trackschema.analytics_aggregate_pending(date,boolean,jsonb)",
                    what="the aggregate-daily procedure", revision=JOB_PROCEDURES_REVISION)
    row = conn.execute("CALL trackschema.analytics_aggregate_pending(%s, false, NULL)", (until,)).fetchone()
    assert row is not None
    return [DayAggregation(day=date.fromisoformat(d.pop("day")), **d) for d in row[0]["days"]]


def aggregate_range(conn: psycopg.Connection, first: date, last: date) -> list[DayAggregation]:
    """Aggregate every day from `first` through `last`, dirty or not."""
    if first > last:
        raise TrackschemaError(f"nothing to aggregate: {first} is after {last}")
    return [aggregate_day(conn, day) for day in days_between(first, last)]


def day_states(conn: psycopg.Connection, first: date, last: date) -> list[DayState]:
    """Markers and last aggregation of each day of a range (for status and tests)."""
    rows = conn.execute(
        """SELECT g.day::date,
                  (SELECT count(*) FROM trackschema.analytics_dirty_days m WHERE m.day = g.day::date),
                  (SELECT r.aggregated_at FROM trackschema.analytics_rollup_days r WHERE r.day = g.day::date)
             FROM generate_series(%s::date, %s::date, interval '1 day') AS g(day)""",
        (first, last),
    ).fetchall()
    return [DayState(*row) for row in rows]
