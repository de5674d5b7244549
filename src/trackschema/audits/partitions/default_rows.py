"""default_partition_rows — rows sit in a default partition, outside every monthly range.

What is wrong: a table declared with a default partition (`table+default` in
TRACKSCHEMA_PARTITIONED_TABLES) catches there the rows no monthly partition covers. They
escape partition pruning (every query that could match them scans the default
partition), and each partition added later has to scan the default partition under an
ACCESS EXCLUSIVE lock on it to prove none of its rows belongs to the new range.

What to do: `trackschema partitions ensure` creates the monthly partitions those rows
belong to and moves them there, in one transaction (no row lost or seen twice). Schedule
the `partition-maintenance` job so months are ready before rows arrive.

On Citus the rows are counted through the coordinator, over the default partition's shards.
"""

from __future__ import annotations

from trackschema.audits import Finding
from trackschema.partitions.monthly import PartitionHealth

KIND = "default_partition_rows"


def check(items: list[PartitionHealth]) -> list[Finding]:
    return [
        Finding(KIND, h.parent, "", f"{h.default_rows} rows in {h.default_partition}, outside every monthly partition",
                f"trackschema partitions ensure --table {h.parent}")
        for h in items if h.state == "partitioned" and h.default_rows
    ]
