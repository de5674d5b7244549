"""conversion_incomplete — a table's conversion to partitions stopped after its preparation.

What is wrong: the upgrade that partitions the table (revision 0030) failed after step 1
(say, it never obtained its lock within lock_timeout). The table is still a plain table,
and the NOT VALID check `<table>_partition_bound` that step 1 added refuses rows dated at
or after the chosen boundary (the start of next month, or later) until the conversion
finishes.

What to do: run the upgrade again; it resumes where it stopped.
"""

from __future__ import annotations

from trackschema.audits import Finding
from trackschema.partitions.monthly import PartitionHealth

KIND = "conversion_incomplete"


def check(items: list[PartitionHealth]) -> list[Finding]:
    return [
        Finding(KIND, h.parent, "", f"partitioning {h.parent} stopped in state {h.state!r}", "trackschema upgrade head")
        for h in items if h.state != "partitioned"
    ]
