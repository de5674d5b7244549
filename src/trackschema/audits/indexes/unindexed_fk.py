"""unindexed_fk — a foreign key whose columns lead no index on the referencing table.

What is wrong: deleting or updating a referenced row (and `ON DELETE CASCADE/SET NULL`)
makes PostgreSQL find the referencing rows; without an index on the foreign-key columns
that is a sequential scan of the referencing table for every such row, under locks.
Joins along the key suffer too.

What to do: `CREATE INDEX CONCURRENTLY` on the foreign-key columns (any index whose
leading columns are exactly those columns will do, also a partial one on
`col IS NOT NULL`). On a partitioned table build it per
partition (CONCURRENTLY) and attach, or accept a blocking `CREATE INDEX` on the parent in
a quiet window; the fix says which.

On Citus this is read from the coordinator's catalog (constraints and indexes are
propagated to the shards); Citus requires a foreign key between distributed tables to
include the distribution column, so the index usually leads with it.
"""

from __future__ import annotations

from trackschema.audits import Finding
from trackschema.audits.indexes.catalog import AuditContext

KIND = "unindexed_fk"

QUERY = r"""
SELECT n.nspname, t.relname, t.relkind::text, con.conname, con.confrelid::regclass::text,
       array_agg(a.attname ORDER BY k.ord) AS columns
  FROM pg_constraint con
  JOIN pg_class t ON t.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
 WHERE con.contype = 'f' AND con.conparentid = 0
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (
        SELECT 1 FROM pg_index i
         WHERE i.indrelid = con.conrelid
           -- a partial index on "col IS NOT NULL" serves every lookup a foreign key makes
           AND (i.indpred IS NULL OR pg_get_expr(i.indpred, i.indrelid) ~ '^\(*"?\w+"? IS NOT NULL\)*$')
           AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] @> con.conkey
           AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] <@ con.conkey)
 GROUP BY n.nspname, t.relname, t.relkind, con.conname, con.confrelid
 ORDER BY 1, 2, 4
"""


def index_name(table: str, columns: list[str]) -> str:
    name = f"idx_{table}_{'_'.join(columns)}"
    return name[:63]


def check(ctx: AuditContext) -> list[Finding]:
    findings = []
    for schema, table, kind, constraint, referenced, columns in ctx.conn.execute(QUERY).fetchall():
        cols = ", ".join(ctx.ident(c) for c in columns)
        name = ctx.ident(index_name(table, columns))
        target = ctx.ident(schema, table)
        if kind == "p":
            fix = f"CREATE INDEX {name} ON {target} ({cols});  -- partitioned: blocks writes; or build per partition CONCURRENTLY and ATTACH"
        else:
            fix = f"CREATE INDEX CONCURRENTLY {name} ON {target} ({cols});"
        findings.append(
            Finding(KIND, f"{schema}.{table}", "", f"foreign key {constraint} ({', '.join(columns)}) → {referenced} has no index leading with its columns", fix,
                    ctx.table_shards(f"{schema}.{table}"))
        )
    return findings
