"""The index audit: one check per module, run over one catalog snapshot.

`audit_indexes_on(conn, kinds)` returns findings; it never changes anything. Checks, in
the order they run: unused, duplicate, redundant, invalid, bloat, unindexed_fk,
write_cost (which points at the drops the others suggest).
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from trackschema.audits import Finding
from trackschema.audits.indexes import bloat, catalog, duplicate, invalid, redundant, unindexed_fk, unused, write_cost

CHECKS = {m.KIND: m for m in (unused, duplicate, redundant, invalid, bloat, unindexed_fk, write_cost)}
KINDS = tuple(CHECKS)


def audit_indexes_on(conn: psycopg.Connection, kinds: Iterable[str] | None = None) -> list[Finding]:
    """Every index finding (or only `kinds`), read-only."""
    wanted = set(kinds or KINDS)
    ctx = catalog.load(conn)
    findings: list[Finding] = []
    for kind, module in CHECKS.items():
        if kind == write_cost.KIND or kind not in wanted and kind not in {unused.KIND, redundant.KIND, duplicate.KIND}:
            continue
        findings.extend(module.check(ctx))
    hints: dict[str, list[str]] = {}
    for f in findings:
        if f.kind in {unused.KIND, redundant.KIND, duplicate.KIND}:
            hints.setdefault(f.table, []).append(f.fix)
    if write_cost.KIND in wanted:
        findings.extend(write_cost.check(ctx, hints))
    return [f for f in findings if f.kind in wanted]
