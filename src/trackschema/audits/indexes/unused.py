"""unused — an index no query has used since the statistics began.

What is wrong: every INSERT, and every UPDATE that is not HOT, writes to every index of
the table. An index with `idx_scan = 0` costs writes, WAL, vacuum time and cache space and
gives nothing back. For a partitioned index the scans of every partition's index are
added up: an index used through a single partition is *used*.

Not reported: unique and primary-key indexes and indexes backing a constraint (they
enforce something even when never scanned).

Before acting: the detail shows how old the statistics are. Statistics reset an hour ago
prove nothing; wait a full business cycle (at least a week, including month-end jobs).
Statistics are per server: check replicas that serve reads too.

On Citus the scans are those of the index's shards on every node, added up (a reference
table's copy on each node included), and the age is that of the youngest node's
statistics; the detail says how many shards were read and `--json` carries `shards`.

What to do: drop it without blocking writes, `DROP INDEX CONCURRENTLY ...` (for a
partitioned index, drop the parent index: `DROP INDEX` on a partitioned index cannot be
CONCURRENTLY, so do it in a quiet window).
"""

from __future__ import annotations

from trackschema.audits import Finding
from trackschema.audits.indexes.catalog import AuditContext

KIND = "unused"
YOUNG_STATISTICS_DAYS = 7


def _age_text(ctx: AuditContext) -> str:
    age = ctx.stats_age
    if age is None:
        return "statistics age unknown"
    days = age.total_seconds() / 86400
    text = f"{days:.1f} days" if days >= 1 else f"{age.total_seconds() / 3600:.1f} hours"
    origin = "since the last statistics reset" if ctx.stats_reset else "since the server started (statistics never reset)"
    warning = f"; statistics younger than {YOUNG_STATISTICS_DAYS} days prove little, wait before dropping" if days < YOUNG_STATISTICS_DAYS else ""
    return f"{text} {origin}{warning}"


def check(ctx: AuditContext) -> list[Finding]:
    findings = []
    for idx in ctx.indexes:
        if idx.scans or idx.enforces_something or not idx.is_valid:
            continue
        where = idx.where()
        concurrently = "" if idx.is_partitioned else " CONCURRENTLY"
        findings.append(
            Finding(
                KIND, idx.table, idx.qualified,
                f"idx_scan = 0{where} over {_age_text(ctx)}; {idx.bytes:,} bytes, maintained on every write",
                f"DROP INDEX{concurrently} {ctx.ident(idx.schema, idx.index_name)};",
                idx.shards,
            )
        )
    return findings
