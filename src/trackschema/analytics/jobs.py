"""The analytics jobs in the job registry (`trackschema jobs run NAME`).

- `aggregate-daily` (02:00 UTC, seed 003): with `--date D` rebuilds day D; with `--since D`
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

from datetime import timedelta
from typing import Any

import psycopg

from trackschema.analytics import legacy, retention, rollups
from trackschema.analytics.dates import db_today, parse_day, positive_int
from trackschema.errors import TrackschemaError
from trackschema.jobs import job


AGGREGATE_SQL = "CALL trackschema.analytics_aggregate_pending()"
RETENTION_SQL = "CALL trackschema.analytics_retention()"


@job("aggregate-daily", schedule="0 2 * * *",
     description="Roll analytics up per UTC day: the days touched since the last run (or --date D / --since D)",
     sql=AGGREGATE_SQL)
def aggregate_daily(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("date") and params.get("since"):
        raise TrackschemaError("give --date D or --since D, not both")
    if params.get("date"):
        mode = "date"
        day = parse_day(params["date"], today=db_today(conn))
        results = [rollups.aggregate_day(conn, day)]
    elif params.get("since"):
        mode = "since"
        today = db_today(conn)
        first = parse_day(params["since"], "--since date", today=today)
        last = today - timedelta(days=1)
        if first > last:
            raise TrackschemaError(f"--since {first} leaves no closed day to aggregate (yesterday, UTC, was {last})")
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


@job("retention", schedule="30 2 * * 0",
     description="Delete raw analytics rows older than N days (default 90) in batches; roll-ups are kept",
     sql=RETENTION_SQL)
def retention_job(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    days = positive_int(params.get("days", retention.DEFAULT_DAYS), "days")
    batch_size = positive_int(params.get("batch_size", retention.DEFAULT_BATCH_SIZE), "batch_size")
    return retention.apply_retention(conn, days=days, batch_size=batch_size).to_dict()


@job("legacy-analytics-move", schedule="*/15 * * * *",
     description="Move legacy analytics_events rows into the normalized tables in batches, archived")
def legacy_move_job(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    batch_size = positive_int(params.get("batch_size", legacy.DEFAULT_BATCH_SIZE), "batch_size")
    return legacy.move_legacy(conn, batch_size).to_dict()
