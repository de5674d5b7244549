"""redundant — an index whose key columns are a left prefix of another index's.

What is wrong: a B-tree on `(a)` is served by a B-tree on `(a, b)` with the same predicate,
operator classes and collations: queries on `a` can use the wider index. The narrow one
costs a write on every insert for a small gain (it is smaller to scan).

Not reported: unique, primary-key and constraint-backing indexes (their uniqueness is
the point) and indexes of different access methods.

What to do: check the narrow index's `idx_scan` and the plans of its hot queries, then
drop it with `DROP INDEX CONCURRENTLY ...`.

On Citus the definitions are the coordinator's (propagated to every shard) and the size
is the shards' total.
"""

from __future__ import annotations

from collections import defaultdict

from trackschema.audits import Finding
from trackschema.audits.indexes.catalog import AuditContext, IndexInfo

KIND = "redundant"


def check(ctx: AuditContext) -> list[Finding]:
    by_table: dict[str, list[IndexInfo]] = defaultdict(list)
    for idx in ctx.indexes:
        if idx.is_valid and idx.access_method == "btree" and not idx.expressions:
            by_table[idx.table].append(idx)
    findings = []
    for indexes in by_table.values():
        for narrow in indexes:
            if narrow.enforces_something:
                continue
            wider = [
                other for other in indexes
                if other.oid != narrow.oid and other.key_count > narrow.key_count
                and other.shape(narrow.key_count) == narrow.shape()
            ]
            if not wider:
                continue
            cover = min(wider, key=lambda o: (o.key_count, o.oid))
            concurrently = "" if narrow.is_partitioned else " CONCURRENTLY"
            findings.append(
                Finding(
                    KIND, narrow.table, narrow.qualified,
                    f"its columns are a left prefix of {cover.qualified} ({cover.definition}); {narrow.bytes:,} bytes{narrow.where()}",
                    f"DROP INDEX{concurrently} {ctx.ident(narrow.schema, narrow.index_name)};",
                    narrow.shards,
                )
            )
    return findings
