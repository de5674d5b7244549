"""Partition audit: the partitioned tables' health as findings.

- `default_partition_rows`: rows sit in a default partition, outside every monthly
  range. They are invisible to partition pruning and would make every later ATTACH scan
  them. Fix: `trackschema partitions ensure`, which creates the months they belong to
  and moves them there.
- `partitions_running_out`: no partition exists for next month, so rows dated then will
  be refused (no default partition) or pile up in the default one. Fix: `trackschema
  partitions ensure` (schedule the `partition-maintenance` job).
- `detach_pending`: a DETACH ... CONCURRENTLY was interrupted. Fix: finish it.
- `conversion_incomplete`: a conversion stopped after its preparation; its NOT VALID
  check refuses rows dated past the boundary until it is finished. Fix: upgrade again.
"""

from __future__ import annotations

import psycopg

from trackschema.audits import Finding
from trackschema.partitions import health


def check(conn: psycopg.Connection) -> list[Finding]:
    """Findings for every partitioned table that needs attention; never changes anything."""
    findings: list[Finding] = []
    for h in health(conn):
        if h.state != "partitioned":
            findings.append(Finding("conversion_incomplete", h.parent, "", f"partitioning {h.parent} stopped in state {h.state}",
                                    "trackschema upgrade head"))
            continue
        if h.default_rows:
            findings.append(Finding("default_partition_rows", h.parent, "",
                                    f"{h.default_rows} rows in {h.default_partition}, outside every monthly partition",
                                    "trackschema partitions ensure"))
        if h.months_ahead < 1:
            findings.append(Finding("partitions_running_out", h.parent, "",
                                    f"partitions cover {max(h.months_ahead, 0)} months after the current one (wanted {h.months_ahead_wanted})",
                                    f"trackschema partitions ensure --table {h.parent}"))
        for part in h.detach_pending:
            findings.append(Finding("detach_pending", h.parent, "", f"{part} is half-detached",
                                    f"ALTER TABLE {h.parent} DETACH PARTITION {part} FINALIZE"))
    return findings
