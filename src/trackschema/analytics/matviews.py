"""Materialized views: the `refresh-matviews` job and each view's freshness.

The views and their bookkeeping come from revision `0040_materialized_views`:
`trackschema.matview_refreshes` lists the views to refresh and records every refresh, and
the procedure `trackschema.refresh_matviews()` does the work, one view per transaction,
CONCURRENTLY once a view is populated (readers are never blocked; see the SQL file
`sql/functions/refresh_matviews.v1.sql`). The Python job and pg_cron call the same
procedure, so both runners refresh the same way and record the same times.

`REFRESH MATERIALIZED VIEW CONCURRENTLY` may run inside a transaction (unlike CREATE
INDEX CONCURRENTLY); the procedure commits after each view so a view's lock and the
refresh's snapshot are held no longer than that view takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from trackschema.runtime.db import require_routine
from trackschema.jobs.registry import job
from trackschema.operations.inputs import Duration
from trackschema.operations.options import Options, option

REFRESH_JOB = "refresh-matviews"


class RefreshFailed(Exception):
    """One or more views failed to refresh; the others were refreshed and recorded."""


@dataclass(frozen=True)
class RefreshOptions(Options):
    operation = REFRESH_JOB
    if_older_than: float | None = option(Duration(minimum=1, maximum=366 * 86400), None,
                                         "Skip views refreshed more recently than this (e.g. 5min).")


@job(
    REFRESH_JOB,
    schedule="*/5 * * * *",
    description="REFRESH MATERIALIZED VIEW CONCURRENTLY each dashboard view (--if-older-than skips fresh ones)",
    options=RefreshOptions,
    # What pg_cron runs: the procedure records the run and takes the job's lock itself.
    procedure="trackschema.refresh_matviews",
    procedure_args=("if_older_than",),
)
def refresh_matviews(conn: psycopg.Connection, options: "RefreshOptions") -> dict[str, Any]:
    """Refresh the registered views, skipping those younger than `if_older_than`.

    `conn` is autocommit: the procedure commits after each view. Raises `RefreshFailed`
    (the run is recorded as failed) when a view could not be refreshed.
    """
    seconds = options.if_older_than
    require_routine(conn, "trackschema.refresh_matviews(interval,boolean,jsonb)",
                    what="the materialized views", revision="0040_materialized_views")
    row = conn.execute(
        "CALL trackschema.refresh_matviews(make_interval(secs => %s), false, NULL)", (seconds,)
    ).fetchone()
    result: dict[str, Any] = row[0] if row else {}
    if result.get("failed"):
        from trackschema.runtime.citus import is_citus

        citus = is_citus(conn)
        failures = "; ".join(f"{name}: {error}{_citus_hint(error) if citus else ''}" for name, error in result["failed"].items())
        raise RefreshFailed(f"{len(result['failed'])} of {len(result['failed']) + len(result['refreshed'])} views failed ({failures})")
    return result


def _citus_hint(error: str) -> str:
    """What a Citus 'not supported' error means for a view (SQLSTATE 0A000 leads the text)."""
    if not str(error).startswith("0A000"):
        return ""
    return (" — Citus cannot run this view's query across shards (joins of distributed tables that are not co-located"
            " on their distribution columns): it is not refreshed on this cluster; see docs/citus.md#materialized-views")


@dataclass(frozen=True)
class MatviewStatus:
    """A materialized view, whether refresh-matviews keeps it fresh, and how fresh it is."""

    view: str
    registered: bool
    populated: bool
    refreshed_at: datetime | None
    age_seconds: float | None
    refresh_seconds: float | None
    refresh_mode: str | None
    concurrent_key: str | None
    total_bytes: int
    last_error: str | None

    def to_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["refreshed_at"] = self.refreshed_at.isoformat() if self.refreshed_at else None
        return data


def matview_status(conn: psycopg.Connection) -> list[MatviewStatus]:
    """Every materialized view in the database with its last refresh and age.

    `concurrent_key` names a unique index REFRESH ... CONCURRENTLY can use (plain columns,
    no predicate, valid), or None: such a view can only be refreshed blocking readers.
    Before revision 0040 (no bookkeeping table) views are listed as not registered.
    """
    has_table = conn.execute("SELECT to_regclass('trackschema.matview_refreshes') IS NOT NULL").fetchone()
    refreshes = REGISTERED if has_table and has_table[0] else NOT_REGISTERED
    rows = conn.execute(sql.SQL(STATUS_QUERY).format(refreshes=sql.SQL(refreshes))).fetchall()
    return [MatviewStatus(*row) for row in rows]


STATUS_QUERY = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), r.view_name IS NOT NULL, c.relispopulated,
       r.refreshed_at, extract(epoch FROM clock_timestamp() - r.refreshed_at)::float8,
       r.refresh_seconds, r.refresh_mode,
       (SELECT i.indexrelid::regclass::text FROM pg_index i
         WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
         ORDER BY i.indexrelid LIMIT 1),
       pg_total_relation_size(c.oid), r.last_error
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  {refreshes}
 WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1
"""
REGISTERED = "LEFT JOIN trackschema.matview_refreshes r ON r.schema_name = n.nspname AND r.view_name = c.relname"
NOT_REGISTERED = """LEFT JOIN (SELECT NULL::text AS view_name, NULL::timestamptz AS refreshed_at, NULL::float8 AS refresh_seconds,
                          NULL::text AS refresh_mode, NULL::text AS last_error WHERE false) r ON true"""
