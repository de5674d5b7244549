"""partitions_running_out — no partition exists yet for next month.

What is wrong: rows dated next month will have nowhere to go. Without a default partition
PostgreSQL refuses them ("no partition of relation ... found for row"), so the writes of
the application fail; with one they pile up in the default partition.

What to do: `trackschema partitions ensure` (add `--months-ahead N` for more), and
schedule the `partition-maintenance` job (daily) or call
`SELECT * FROM trackschema.partition_ensure();` from pg_cron.
"""

from __future__ import annotations

from trackschema.audits import Finding
from trackschema.partitions.monthly import PartitionHealth

KIND = "partitions_running_out"


def check(items: list[PartitionHealth]) -> list[Finding]:
    return [
        Finding(KIND, h.parent, "",
                f"partitions cover {max(h.months_ahead, 0)} months after the current one (wanted {h.months_ahead_wanted})"
                + ("; not even the current month" if h.months_ahead < 0 else ""),
                f"trackschema partitions ensure --table {h.parent}")
        for h in items if h.state == "partitioned" and h.months_ahead < 1
    ]
