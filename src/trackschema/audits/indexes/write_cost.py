"""write_cost — a table whose indexes make every write expensive.

What is wrong: an INSERT writes the heap once and every index once; an UPDATE that is
not HOT does the same. GIN indexes cost more per write (pending-list merges). Tracking
tables are written far more than read ([design.md#write-heavy](design.md#write-heavy)), so each
index must earn its keep. Reported when a table has more than `MAX_INDEXES` indexes, more
than `MAX_GIN` GIN indexes, or indexes larger than `MAX_INDEX_TO_TABLE` times the table.

What to do: review the table's `unused` and `redundant` findings first (the fix lists the
drops they suggest for this table); keep report-only indexes off write-heavy tables and
build them when a report needs them; prefer partial indexes (`WHERE col IS NOT NULL`).

On Citus the table and index sizes of Citus tables are their shards' totals (every
placement: a reference table counts once per node, as each node writes its copy); the
index counts are the coordinator's, which every shard has.
"""

from __future__ import annotations

from trackschema.audits import Finding
from trackschema.audits.indexes.catalog import AuditContext

KIND = "write_cost"
MAX_INDEXES = 6
MAX_GIN = 1
MAX_INDEX_TO_TABLE = 2.0
MIN_TABLE_BYTES_FOR_SIZE_RULE = 8 * 1024 * 1024

TABLES = """
SELECT n.nspname, t.relname,
       CASE WHEN t.relkind = 'p'
            THEN (SELECT coalesce(sum(pg_relation_size(p.relid)), 0) FROM pg_partition_tree(t.oid) p WHERE p.isleaf)
            ELSE pg_relation_size(t.oid) END::bigint
  FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE t.relkind IN ('r', 'p') AND NOT t.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
"""


def check(ctx: AuditContext, hints: dict[str, list[str]] | None = None) -> list[Finding]:
    """`hints` maps a table to drop statements other checks suggested for it."""
    per_table: dict[str, list] = {}
    for idx in ctx.indexes:
        per_table.setdefault(idx.table, []).append(idx)
    findings = []
    sharded = ctx.table_figures
    for schema, table, table_bytes in ctx.conn.execute(TABLES).fetchall():
        name = f"{schema}.{table}"
        if name in sharded:
            table_bytes = sharded[name].bytes
        indexes = per_table.get(name, [])
        count = len(indexes)
        gin = sum(1 for i in indexes if i.access_method == "gin")
        index_bytes = sum(i.bytes for i in indexes)
        reasons = []
        if count > MAX_INDEXES:
            reasons.append(f"{count} indexes (> {MAX_INDEXES})")
        if gin > MAX_GIN:
            reasons.append(f"{gin} GIN indexes (> {MAX_GIN})")
        if table_bytes >= MIN_TABLE_BYTES_FOR_SIZE_RULE and index_bytes > MAX_INDEX_TO_TABLE * table_bytes:
            reasons.append(f"indexes {index_bytes / table_bytes:.1f}x the table size")
        if not reasons:
            continue
        suggested = (hints or {}).get(name, [])
        fix = " ".join(suggested) if suggested else "review which indexes this table's queries need (no unused or redundant index found to drop)"
        findings.append(
            Finding(
                KIND, name, "",
                f"every insert writes the heap and {count} indexes ({gin} GIN, {index_bytes:,} index bytes vs {table_bytes:,} table bytes): " + "; ".join(reasons),
                fix,
                sharded[name].placements if name in sharded else None,
            )
        )
    return findings
