"""Retention: raw analytics rows older than N days deleted in batches; roll-ups kept.

Order of work (each step its own transaction, so a run can stop anywhere and be rerun):
1. raise the ingest horizon (`accept_from`) to the cutoff under an exclusive advisory lock
   that in-flight `analytics_ingest` calls hold shared: once it is granted no batch can
   still add events older than the cutoff;
2. aggregate every dirty day before the cutoff, so the roll-ups of the days about to lose
   their raw rows are complete;
3. record the cutoff as `purged_before`: aggregated days before it are final from now on
   (aggregate_analytics_daily leaves them alone instead of wiping them);
4. `analytics_purge_raw_batch(cutoff, batch_size)` until nothing is left: page views,
   clicks, then sessions that ended before the cutoff; session counters stay equal to the
   raw rows that remain;
5. ingest rejects older than the cutoff, in batches.

The cutoff is UTC midnight N days before today, so whole days are purged. Events older
than the horizon that are written directly (not through analytics_ingest, which rejects
them) while a run is under way may miss the roll-ups: run the legacy move before the first
retention run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import psycopg

from trackschema.analytics.locks import HORIZON_LOCK_CLASS
from trackschema.analytics.rollups import DayAggregation, aggregate_pending, db_today

DEFAULT_DAYS = 90
DEFAULT_BATCH_SIZE = 10_000


@dataclass
class RetentionResult:
    cutoff: datetime
    aggregated: list[DayAggregation] = field(default_factory=list)
    page_views: int = 0
    clicks: int = 0
    sessions: int = 0
    rejects: int = 0
    batches: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "aggregated_days": [a.day.isoformat() for a in self.aggregated],
            "deleted": {"page_views": self.page_views, "clicks": self.clicks, "sessions": self.sessions, "rejects": self.rejects},
            "batches": self.batches,
        }


def cutoff_for(today: date, days: int) -> datetime:
    return datetime.combine(today - timedelta(days=days), time(0), tzinfo=timezone.utc)


def apply_retention(conn: psycopg.Connection, *, days: int = DEFAULT_DAYS, batch_size: int = DEFAULT_BATCH_SIZE) -> RetentionResult:
    """Delete raw analytics rows older than `days` days in batches of `batch_size` (autocommit `conn`)."""
    cutoff = cutoff_for(db_today(conn), days)
    result = RetentionResult(cutoff)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (HORIZON_LOCK_CLASS,))
        conn.execute(
            """UPDATE trackschema.analytics_raw_horizon
                  SET accept_from = greatest(coalesce(accept_from, %(c)s), %(c)s), changed_at = now()""",
            {"c": cutoff},
        )
    result.aggregated = aggregate_pending(conn, until=cutoff.date())
    conn.execute(
        """UPDATE trackschema.analytics_raw_horizon
              SET purged_before = greatest(coalesce(purged_before, %(c)s), %(c)s), changed_at = now()""",
        {"c": cutoff},
    )
    while True:
        row = conn.execute("SELECT * FROM analytics_purge_raw_batch(%s, %s)", (cutoff, batch_size)).fetchone()
        assert row is not None
        if not any(row):
            break
        result.batches += 1
        result.page_views += row[0]
        result.clicks += row[1]
        result.sessions += row[2]
    while True:
        deleted = conn.execute(
            """DELETE FROM trackschema.analytics_ingest_rejects
                WHERE id IN (SELECT id FROM trackschema.analytics_ingest_rejects
                              WHERE rejected_at < %s ORDER BY id LIMIT %s)""",
            (cutoff, batch_size),
        ).rowcount
        result.rejects += deleted
        if deleted < batch_size:
            break
    return result
