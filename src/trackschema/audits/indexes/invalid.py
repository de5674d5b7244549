"""invalid — an index PostgreSQL marked INVALID, usually left by a failed CONCURRENTLY build.

What is wrong: `CREATE INDEX CONCURRENTLY` (or `REINDEX CONCURRENTLY`) that fails or is
cancelled leaves the index behind, INVALID: queries never use it, yet every write still
maintains it. A partitioned index is also invalid while some partition lacks its index.

What to do: drop it and build it again, both without blocking writes:
`DROP INDEX CONCURRENTLY ...; CREATE INDEX CONCURRENTLY ...` (the fix gives both). For a
partitioned index, create the missing partition index and `ALTER INDEX ... ATTACH
PARTITION`.

On Citus an index is also reported when the coordinator has it valid but a copy on some
shard is INVALID (a propagated CONCURRENTLY build that failed on a worker); the same
fix, run on the coordinator, rebuilds it on every shard.
"""

from __future__ import annotations

import re

from trackschema.audits import Finding
from trackschema.audits.indexes.catalog import AuditContext

KIND = "invalid"


def check(ctx: AuditContext) -> list[Finding]:
    findings = []
    for idx in ctx.indexes:
        if idx.is_valid and not idx.invalid_shards:
            continue
        name = ctx.ident(idx.schema, idx.index_name)
        if idx.is_partitioned:
            fix = f"-- create the missing index on each partition, then: ALTER INDEX {name} ATTACH PARTITION <partition_index>;"
        else:
            rebuild = re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX CONCURRENTLY ", idx.definition, count=1)
            fix = f"DROP INDEX CONCURRENTLY {name}; {rebuild};"
        where = f" on {idx.invalid_shards} of {idx.shards} shards" if idx.invalid_shards else ""
        findings.append(Finding(KIND, idx.table, idx.qualified, f"INVALID{where} (never used by queries, still written): {idx.definition}", fix, idx.shards))
    return findings
