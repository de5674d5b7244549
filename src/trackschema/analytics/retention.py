"""Retention: raw analytics rows older than N days deleted in batches; roll-ups kept.

The work is `trackschema.analytics_retention(days, batch_size)` (sql/functions/
analytics_retention.v1.sql, revision 0060), a procedure so that pg_cron and
`trackschema jobs run retention` do exactly the same thing. Order of work (each step its
own transaction, so a run can stop anywhere and be rerun):
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
from datetime import date, datetime, timezone
from typing import Any

import psycopg

from trackschema.analytics.rollups import JOB_PROCEDURES_REVISION
from trackschema.runtime.db import require_routine
from trackschema.errors import TrackschemaError

DEFAULT_DAYS = 90
DEFAULT_BATCH_SIZE = 10_000


@dataclass
class RetentionResult:
    cutoff: datetime
    aggregated_days: list[date] = field(default_factory=list)
    page_views: int = 0
    clicks: int = 0
    sessions: int = 0
    rejects: int = 0
    batches: int = 0

    @classmethod
    def from_procedure(cls, result: dict[str, Any]) -> RetentionResult:
        """From the procedure's p_result (`cutoff` as JSON text in the session's time zone)."""
        deleted = result["deleted"]
        return cls(
            cutoff=datetime.fromisoformat(result["cutoff"]).astimezone(timezone.utc),
            aggregated_days=[date.fromisoformat(d) for d in result["aggregated_days"]],
            page_views=deleted["page_views"], clicks=deleted["clicks"], sessions=deleted["sessions"],
            rejects=deleted["rejects"], batches=result["batches"],
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "aggregated_days": [d.isoformat() for d in self.aggregated_days],
            "deleted": {"page_views": self.page_views, "clicks": self.clicks, "sessions": self.sessions, "rejects": self.rejects},
            "batches": self.batches,
        }


def apply_retention(conn: psycopg.Connection, *, days: int = DEFAULT_DAYS, batch_size: int = DEFAULT_BATCH_SIZE) -> RetentionResult:
    """Run the retention procedure on autocommit `conn` (it commits after every step and
    batch); the caller records the run (`jobs.run`). A failing step raises; what earlier
    steps committed stays, and a rerun carries on."""
    if not conn.autocommit:
        raise TrackschemaError("apply_retention needs an autocommit connection: the procedure commits after each batch")
    require_routine(conn, "trackschema.analytics_retention(integer,integer,boolean,jsonb)",
                    what="the retention procedure", revision=JOB_PROCEDURES_REVISION)
    row = conn.execute("CALL trackschema.analytics_retention(%s, %s, false, NULL)", (days, batch_size)).fetchone()
    assert row is not None
    return RetentionResult.from_procedure(row[0])
