"""Maintenance jobs: VACUUM ANALYZE on the high-traffic tables (seed 004, Job 3)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from trackschema.jobs import job

# Tables whose updates and deletes leave the most dead tuples (seed 004 §5, Job 3).
HIGH_TRAFFIC_TABLES = ("calendar_events", "context_events", "roadmap_items", "activity_log", "entity_events")


@job("vacuum-analyze", schedule="0 3 * * 0", description="VACUUM (ANALYZE) the high-traffic tables, weekly")
def vacuum_analyze(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    """VACUUM cannot run inside a transaction: `conn` is autocommit, one table at a time."""
    tables = params.get("tables") or HIGH_TRAFFIC_TABLES
    timings: dict[str, float] = {}
    for table in tables:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if not exists or not exists[0]:
            continue
        started = time.monotonic()
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        timings[table] = round(time.monotonic() - started, 3)
    return {"tables": timings}
