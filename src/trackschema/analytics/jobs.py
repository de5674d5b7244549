"""The analytics jobs in the job registry (`trackschema jobs run NAME`).

- `aggregate-daily` (02:00 UTC, docs/design.md#rollups): with `--date D` rebuilds day D; with `--since D`
  every day from D through yesterday; otherwise the dirty closed days only (incremental).
- `retention` (weekly): raw rows older than `--param days=N` (default 90) deleted in
  batches of `--param batch_size=N`; roll-ups kept.
- `legacy-analytics-move` (every 15 minutes until the legacy table stays empty): moves the
  legacy analytics_events rows into the normalized tables in batches, archived. Its
  rollback is `trackschema analytics legacy-restore`, deliberately not a job.

`aggregate-daily` (incremental mode) and `retention` run as procedures
(`trackschema.analytics_aggregate_pending()`, `trackschema.analytics_retention()`,
revision 0060): their SQL entry points, so `jobs schedule` gives them to pg_cron, and the
CLI calls the same procedures, so both ways do the same work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from trackschema.analytics import legacy, retention, rollups
from trackschema.analytics.dates import db_today, parse_day
from trackschema.jobs.registry import job
from trackschema.operations.inputs import Count, Day, InputError
from trackschema.operations.options import Options, option


# The widest --since window aggregate-daily takes in one run (about ten years of days).
MAX_SINCE_DAYS = 3660


@dataclass(frozen=True)
class AggregateOptions(Options):
    operation = "aggregate-daily"
    date: str | None = option(Day(), None, "Rebuild this one UTC day (YYYY-MM-DD, today, yesterday).")
    since: str | None = option(Day(), None, "Rebuild every day from this one through yesterday (UTC).")

    def check(self, label: Callable[[str], str]) -> None:
        if self.date and self.since:
            raise InputError(f"give {label('date')} or {label('since')}, not both")


@job("aggregate-daily", schedule="0 2 * * *",
     description="Roll analytics up per UTC day: the days touched since the last run (or --date D / --since D)",
     options=AggregateOptions, procedure="trackschema.analytics_aggregate_pending")
def aggregate_daily(conn: psycopg.Connection, options: AggregateOptions) -> dict[str, Any]:
    if options.date:
        mode = "date"
        day = parse_day(options.date, today=db_today(conn))
        results = [rollups.aggregate_day(conn, day)]
    elif options.since:
        mode = "since"
        today = db_today(conn)
        first = parse_day(options.since, "--since date", today=today)
        last = today - timedelta(days=1)
        if first > last:
            raise InputError(f"--since {first} leaves no closed day to aggregate (yesterday, UTC, was {last})")
        if (last - first).days >= MAX_SINCE_DAYS:
            raise InputError(f"--since {first} spans {(last - first).days + 1:,} days: give a day at most {MAX_SINCE_DAYS:,} "
                             f"days back (from {last - timedelta(days=MAX_SINCE_DAYS - 1)}), and run again for older ones")
        results = rollups.aggregate_range(conn, first, last)
    else:
        mode = "dirty"
        results = rollups.aggregate_pending(conn)
    return {
        "mode": mode,
        "aggregated": sum(1 for r in results if r.outcome == "aggregated"),
        "final": [r.day.isoformat() for r in results if r.outcome == "final"],
        "days": [r.to_dict() for r in results],
    }


@dataclass(frozen=True)
class RetentionOptions(Options):
    operation = "retention"
    days: int = option(Count(1, 36_600), retention.DEFAULT_DAYS, "Keep the raw rows of the last N UTC days.")
    batch_size: int = option(Count(1, 1_000_000), retention.DEFAULT_BATCH_SIZE, "Rows deleted per transaction.")


@job("retention", schedule="30 2 * * 0",
     description="Delete raw analytics rows older than N days (default 90) in batches; roll-ups are kept",
     options=RetentionOptions,
     procedure="trackschema.analytics_retention", procedure_args=("days", "batch_size"))
def retention_job(conn: psycopg.Connection, options: RetentionOptions) -> dict[str, Any]:
    return retention.apply_retention(conn, days=options.days, batch_size=options.batch_size).to_dict()


@dataclass(frozen=True)
class LegacyMoveOptions(Options):
    operation = "legacy-analytics-move"
    batch_size: int = option(Count(1, 1_000_000), legacy.DEFAULT_BATCH_SIZE, "Legacy rows moved per transaction.")


@job("legacy-analytics-move", schedule="*/15 * * * *",
     description="Move legacy analytics_events rows into the normalized tables in batches, archived",
     options=LegacyMoveOptions)
def legacy_move_job(conn: psycopg.Connection, options: LegacyMoveOptions) -> dict[str, Any]:
    return legacy.move_legacy(conn, options.batch_size).to_dict()
