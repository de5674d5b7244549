"""detach_pending — a partition was left half-detached by an interrupted DETACH ... CONCURRENTLY.

What is wrong: `partitions retire` detaches in two transactions; when the second one does
not run (the command was cancelled, the connection dropped), the partition stays marked
"detach pending": queries already ignore it, but it is still attached in the catalog and
no other partition can be detached CONCURRENTLY from the same table.

What to do: finish it with the statement given, or rerun `trackschema partitions retire`,
which finalizes it first.
"""

from __future__ import annotations

from trackschema.audits import Finding
from trackschema.partitions.monthly import PartitionHealth

KIND = "detach_pending"


def check(items: list[PartitionHealth]) -> list[Finding]:
    return [
        Finding(KIND, h.parent, "", f"{part} is half-detached", f"ALTER TABLE {h.parent} DETACH PARTITION {part} FINALIZE")
        for h in items for part in h.detach_pending
    ]
