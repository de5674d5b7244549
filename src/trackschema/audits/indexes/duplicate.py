"""duplicate — two indexes with the same definition on the same table.

What is wrong: same access method, columns or expressions, operator classes, collations,
sort options and predicate: the planner can use only one, every write maintains both.

What to do: keep the one that enforces something (unique, primary key, constraint) or
else the oldest, and drop the other with `DROP INDEX CONCURRENTLY ...`. When the
duplicate backs a constraint, drop the constraint instead (the fix says so).

On Citus this is read from the coordinator's catalog: index definitions are propagated
to every shard, so the shards hold the same duplicate (`--json` gives their count).
"""

from __future__ import annotations

from collections import defaultdict

from trackschema.audits import Finding
from trackschema.audits.indexes.catalog import AuditContext, IndexInfo

KIND = "duplicate"


def _keep_order(idx: IndexInfo) -> tuple[int, int, int]:
    """Sort key: the index to keep comes first."""
    return (0 if idx.is_primary else 1, 0 if idx.enforces_something else 1, idx.oid)


def check(ctx: AuditContext) -> list[Finding]:
    groups: dict[tuple[object, ...], list[IndexInfo]] = defaultdict(list)
    for idx in ctx.indexes:
        if idx.is_valid:
            groups[(idx.table, idx.is_unique, *idx.shape())].append(idx)
    findings = []
    for members in groups.values():
        if len(members) < 2:
            continue
        keep, *drops = sorted(members, key=_keep_order)
        for idx in drops:
            if idx.constraint_name:
                fix = f"ALTER TABLE {ctx.ident(idx.schema, idx.table_name)} DROP CONSTRAINT {ctx.ident(idx.constraint_name)};"
            else:
                concurrently = "" if idx.is_partitioned else " CONCURRENTLY"
                fix = f"DROP INDEX{concurrently} {ctx.ident(idx.schema, idx.index_name)};"
            findings.append(Finding(KIND, idx.table, idx.qualified, f"same definition as {keep.qualified}: {idx.definition}", fix, idx.shards))
    return findings
