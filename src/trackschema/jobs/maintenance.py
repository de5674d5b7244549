"""Maintenance jobs: VACUUM ANALYZE on the high-traffic tables (docs/design.md#vacuum)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from trackschema.jobs.registry import job
from trackschema.operations.inputs import Names
from trackschema.operations.options import Options, option

# Tables whose updates and deletes leave the most dead tuples (docs/design.md#vacuum).
HIGH_TRAFFIC_TABLES = ("calendar_events", "context_events", "roadmap_items", "activity_log", "entity_events")


@dataclass(frozen=True)
class VacuumOptions(Options):
    operation = "vacuum-analyze"
    tables: tuple[str, ...] = option(Names(), HIGH_TRAFFIC_TABLES, "Tables to VACUUM (ANALYZE), comma-separated; missing ones are skipped.")


@job("vacuum-analyze", schedule="0 3 * * 0", description="VACUUM (ANALYZE) the high-traffic tables, weekly",
     options=VacuumOptions)
def vacuum_analyze(conn: psycopg.Connection, options: VacuumOptions) -> dict[str, Any]:
    """VACUUM cannot run inside a transaction: `conn` is autocommit, one table at a time."""
    tables = options.tables
    timings: dict[str, float] = {}
    for table in tables:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if not exists or not exists[0]:
            continue
        started = time.monotonic()
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(*table.split("."))))
        timings[table] = round(time.monotonic() - started, 3)
    return {"tables": timings}


# Sizes of top-level tables: partitioned tables count their partitions.
SNAPSHOT = """
INSERT INTO trackschema.table_size_snapshots (taken_at, table_name, total_bytes, rows_estimate)
SELECT now(), c.oid::regclass::text,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0) FROM pg_partition_tree(c.oid) p WHERE p.isleaf)
            ELSE pg_total_relation_size(c.oid) END,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(greatest(pc.reltuples, 0)), 0) FROM pg_partition_tree(c.oid) p JOIN pg_class pc ON pc.oid = p.relid WHERE p.isleaf)
            ELSE greatest(c.reltuples, 0) END::bigint
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
"""


@job("table-sizes", schedule="15 0 * * *", description="Snapshot every table's size, daily (status shows growth)")
def table_sizes(conn: psycopg.Connection, options: object) -> dict[str, Any]:
    """One INSERT ... SELECT from the catalog; keeps 400 days of history. On Citus the
    coordinator's catalog holds only empty shells of distributed tables: their rows and
    bytes are then their shards' on every node (`status.citus_table_sizes`, one query per
    node), written over the shells' figures in the same transaction. A node that does not
    answer leaves the shells' figures (and `sharded` 0 in the result)."""
    from trackschema.status import citus_table_sizes

    with conn.transaction():
        taken = conn.execute(SNAPSHOT).rowcount
        sharded = citus_table_sizes(conn)
        if sharded:  # one statement for every Citus table
            conn.execute(
                """UPDATE trackschema.table_size_snapshots AS t SET rows_estimate = s.rows, total_bytes = s.bytes
                     FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS s(table_name, rows, bytes)
                    WHERE t.taken_at = now() AND t.table_name = s.table_name""",
                (list(sharded), [rows for rows, _ in sharded.values()], [size for _, size in sharded.values()]))
        pruned = conn.execute("DELETE FROM trackschema.table_size_snapshots WHERE taken_at < now() - interval '400 days'").rowcount
    return {"tables": taken, "sharded": len(sharded), "pruned": pruned}
