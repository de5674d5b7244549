"""Time `upgrade head` on an empty database, and `downgrade base`, against a baseline.

The baseline, measured in the same run on the same server, is `CREATE DATABASE` of an
empty database: the cheapest thing a migration run could possibly cost. Run:

    python benchmarks/bench_upgrade.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from trackschema.migrations import runner as migrate
from trackschema.runtime import scratch
from trackschema.runtime.provision import provision
from trackschema.runtime.settings import Settings


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    server = provision()
    upgrade_times, downgrade_times, baseline_times = [], [], []
    try:
        with scratch.admin(server.url) as admin:
            for i in range(args.repeat):
                name = f"bench_upgrade_{i}"
                scratch.drop(admin, name)
                started = time.perf_counter()
                scratch.create(admin, name)
                baseline_times.append(time.perf_counter() - started)
                settings = Settings(database_url=scratch.database_url(server.url, name))
                started = time.perf_counter()
                result = migrate.upgrade(settings, "head")
                upgrade_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                migrate.downgrade(settings, "base")
                downgrade_times.append(time.perf_counter() - started)
                scratch.drop(admin, name)
    finally:
        server.stop()
    up, down, base = (statistics.median(t) for t in (upgrade_times, downgrade_times, baseline_times))
    figures = {"revisions": float(len(result.applied)), "upgrade_head_s": up, "downgrade_base_s": down, "create_database_s": base,
               "upgrade_vs_create_database": up / base}
    print(f"upgrade head ({len(result.applied)} revisions) on an empty database: median {up * 1000:.0f} ms over {args.repeat} runs")
    print(f"downgrade base: median {down * 1000:.0f} ms")
    print(f"baseline CREATE DATABASE: median {base * 1000:.0f} ms")
    print(f"ratio upgrade head / CREATE DATABASE: {up / base:.1f}x")
    return figures


if __name__ == "__main__":
    main()
