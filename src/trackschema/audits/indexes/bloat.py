"""bloat — a B-tree index much larger than its live entries need.

What is wrong: B-tree pages emptied by deletes and updates are reused only for keys that
sort into them; after a mass delete, or with ever-increasing keys and old-row deletes,
an index can stay several times larger than needed, costing cache and I/O.

How it is estimated: from the planner's statistics (rows in `pg_class.reltuples`, average
column widths in `pg_stats`), the pages the live entries need at the index's fillfactor
are compared with the pages it has. Run ANALYZE first; indexes without column statistics
or on expressions are not estimated. Deduplication (PostgreSQL 13+) makes real indexes
smaller than the estimate, so the estimate errs towards reporting less bloat.

What to do: rebuild it without blocking writes, `REINDEX INDEX CONCURRENTLY ...` (needs
free disk for a second copy while it runs). For exact figures install `pgstattuple` and
look at `pgstatindex(...)`'s `avg_leaf_density`.

On Citus the estimate is made on every shard (each node's own statistics: ANALYZE on the
coordinator analyzes the shards) and summed per logical index; the fix, run on the
coordinator, reindexes every shard.
"""

from __future__ import annotations

from trackschema.audits import Finding
from trackschema.audits.indexes.catalog import AuditContext

KIND = "bloat"
MIN_BLOAT_RATIO = 0.30
MIN_WASTED_BYTES = 1024 * 1024

ESTIMATE = """
WITH idx AS (
    SELECT c.oid, n.nspname, c.relname AS index_name, t.relname AS table_name, i.indrelid,
           i.indkey::int2[] AS keys, c.relpages::float8 AS pages, greatest(c.reltuples, 0)::float8 AS tuples,
           coalesce((SELECT substring(opt FROM 'fillfactor=([0-9]+)')::int FROM unnest(c.reloptions) opt
                      WHERE opt LIKE 'fillfactor=%%'), 90) AS fillfactor,
           current_setting('block_size')::int AS block_size
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_am am ON am.oid = c.relam
     WHERE am.amname = 'btree' AND c.relkind = 'i' AND i.indexprs IS NULL AND i.indisvalid
       AND c.relpages > 8
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
), widths AS (
    SELECT idx.oid, sum(s.avg_width)::float8 AS data_width, bool_and(s.avg_width IS NOT NULL) AS has_stats
      FROM idx
      CROSS JOIN LATERAL unnest(idx.keys) AS k(attnum)
      JOIN pg_attribute a ON a.attrelid = idx.indrelid AND a.attnum = k.attnum
      LEFT JOIN pg_stats s ON s.schemaname = idx.nspname AND s.tablename = idx.table_name AND s.attname = a.attname
     GROUP BY idx.oid
)
SELECT idx.nspname, idx.table_name, idx.index_name, idx.pages, idx.block_size,
       -- index tuple: 8-byte header + data, MAXALIGNed, + 4-byte line pointer; 24-byte page
       -- header and 16-byte B-tree special space; one meta page; ~1%% internal pages.
       ceil(idx.tuples * (ceil((8 + w.data_width) / 8) * 8 + 4)
            / ((idx.block_size - 40) * idx.fillfactor / 100.0) * 1.01) + 1 AS expected_pages
  FROM idx JOIN widths w ON w.oid = idx.oid
 WHERE w.has_stats
"""


def _estimates(ctx: AuditContext) -> list[tuple[str, str, str, float, int, float, int | None]]:
    """(schema, table, index, pages, block size, expected pages, shards): the coordinator's own
    indexes, and on Citus each Citus table's index summed over its shards."""
    sharded = {idx.qualified: idx for idx in ctx.indexes if idx.shards is not None}
    rows = [(*row, None) for row in ctx.conn.execute(ESTIMATE).fetchall() if f"{row[0]}.{row[2]}" not in sharded]
    for idx in sharded.values():
        fig = ctx.shard_figures.summed(idx.members) if ctx.shard_figures else None
        if fig and fig.bloat_pages:
            rows.append((idx.schema, idx.table_name, idx.index_name, fig.bloat_pages, fig.block_size, fig.bloat_expected, idx.shards))
    return rows


def check(ctx: AuditContext) -> list[Finding]:
    findings = []
    for schema, table, index, pages, block_size, expected, shards in _estimates(ctx):
        wasted = (pages - expected) * block_size
        ratio = 1 - expected / pages if pages else 0.0
        if ratio < MIN_BLOAT_RATIO or wasted < MIN_WASTED_BYTES:
            continue
        findings.append(
            Finding(
                KIND, f"{schema}.{table}", f"{schema}.{index}",
                f"about {ratio:.0%} bloat: {int(pages):,} pages where the live entries need about {int(expected):,} "
                f"({int(wasted):,} bytes reclaimable; estimate from statistics{'' if shards is None else f', summed over {shards} shards'})",
                f"REINDEX INDEX CONCURRENTLY {ctx.ident(schema, index)};",
                shards,
            )
        )
    return findings
