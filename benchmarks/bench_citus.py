"""The schema on a local Citus cluster against one PostgreSQL server, the same input, in one run.

Starts two targets from the local binaries (or takes them: `--database-url` for the single
server, and the plugin's session cluster when called from the tests), both with their data
in the same kind of storage:

* single: one PostgreSQL 15 server, a database migrated to head;
* citus: a coordinator and `--workers` workers (`trackschema.runtime.provision.CitusCluster`),
  a Citus database on every node migrated to head through the coordinator (revision 0100
  distributes the tables there; docs/citus.md). `upgrade_head_s_citus` times that upgrade.

Then, on both, the same sample traffic (`--events` events of the last `--days` days, one
file of JSON Lines): `trackschema ingest`'s code (`analytics.ingest.ingest_handle`: parse,
check, COPY into staging, land, per-batch session counters) timed, the single side and
the Citus side in alternating halves so that both see the same machine; then the daily
roll-up (`rollups.aggregate_pending`), whose figures must be equal on both sides (the run
fails otherwise); then `--dashboards` dashboards of the busiest users over the last 7
days, each side's median in milliseconds.

Three nodes on one 2-core machine share its cores, so the cluster does not beat the single
server here; what predicts scale on separate machines is what each node spends. So the
run also reads each node's server CPU time during the ingest (its postmaster's and its
processes' user + system time from /proc) and reports events per CPU-second on every
node, next to the single server's: on workers of their own, a worker whose CPU is the
bottleneck lands about that many events a second, times the number of workers.

Prints a table on stderr, then one JSON line on stdout with `ingest_events_per_s_citus`,
`ingest_events_per_s_single`, `ratio` (citus / single), `ingest_events_per_cpu_s`
(per node), `dashboard_ms_citus`, `dashboard_ms_single`, `upgrade_head_s_citus`,
`upgrade_head_s_single`, `distributed_tables` (Citus tables, partitions included),
`analytics_distributed` and the context.

    python benchmarks/bench_citus.py            # 200k events, 2 workers
    python benchmarks/bench_citus.py --quick    # 20k events: well under a minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import zlib
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from trackschema.analytics import dashboard, ingest, rollups  # noqa: E402
from trackschema.analytics.dates import db_today  # noqa: E402
from trackschema.analytics.sample import sample_events  # noqa: E402
from trackschema.migrations import runner  # noqa: E402
from trackschema.runtime.provision import CitusCluster, LocalCluster, provision, start_citus  # noqa: E402
from trackschema.runtime.scratch import create_database, drop_database  # noqa: E402
from trackschema.settings import Settings  # noqa: E402

DATABASE = "bench_citus"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The roll-ups' figures, compared between the two sides: per table the row count and an
# order-independent sum of each row's hash over its key and counts (not its id or
# aggregated_at, which differ by nature; arrays sorted).
ROLLUP_FIGURES = """
SELECT (SELECT count(*) || ':' || coalesce(sum(hashtextextended(concat_ws('|', user_code, date, total_sessions, total_page_views,
                total_clicks, (SELECT array_agg(c ORDER BY c) FROM unnest(unique_share_codes) AS c)::text), 0)), 0)
          FROM analytics_daily_user_stats),
       (SELECT count(*) || ':' || coalesce(sum(hashtextextended(concat_ws('|', user_code, share_code, date, total_sessions,
                total_page_views, total_clicks), 0)), 0) FROM analytics_daily_group_stats),
       (SELECT count(*) || ':' || coalesce(sum(hashtextextended(concat_ws('|', user_code, share_code, date, page_type,
                view_count), 0)), 0) FROM analytics_daily_page_stats),
       (SELECT count(*) || ':' || coalesce(sum(hashtextextended(concat_ws('|', user_code, share_code, date, click_target,
                click_category, click_count), 0)), 0) FROM analytics_daily_click_targets),
       (SELECT count(*) || ':' || coalesce(sum(page_views), 0) || '/' || coalesce(sum(clicks), 0) FROM analytics_sessions)
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_traffic(paths: list[Path], events: int, *, users: int, now: datetime, days: int, per_line: int, seed: int) -> int:
    """`events` events of the demo's sample traffic (`analytics.sample.sample_events`) of the
    last `days` days, spread over `users` user codes: each session's user code is one of
    `bench-u0`..`bench-u{users-1}`, picked by a hash of its session id (the sample itself has
    5 users, one of them with half the traffic: on Citus that is one shard, not a cluster's
    worth of tenants). Lines of `per_line` events, the files about equal; returns the lines."""
    sessions_per_day = max(events // (6 * days), 10)
    total_lines = -(-events // per_line)  # rounded up
    per_file = -(-total_lines // len(paths))
    outs = [path.open("w") for path in paths]
    lines = written = 0
    batch: list[str] = []
    try:
        for event in sample_events(now=now, days=days, sessions_per_day=sessions_per_day * 2, seed=seed, prefix="bench"):
            data = event["data"]
            data["user_code"] = f"bench-u{zlib.crc32(data['session_id'].encode()) % users}"
            batch.append(json.dumps(event))
            written += 1
            if len(batch) == per_line or written == events:
                outs[min(lines // per_file, len(outs) - 1)].write('{"events": [' + ", ".join(batch) + "]}\n")
                lines += 1
                batch = []
            if written == events:
                break
    finally:
        for out in outs:
            out.close()
    if written < events:
        raise SystemExit(f"the sample gave {written:,} events, not {events:,}")
    return lines


def node_cpu_seconds(node: LocalCluster) -> float:
    """User + system CPU seconds the node's server has spent so far: its postmaster's own
    and its waited-for children's (backends that ended), plus every live child's."""
    pid_file = node.data_dir / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def ingest_file(url: str, path: Path, batch_events: int) -> tuple[float, int]:
    """Seconds `trackschema ingest`'s code took for `path`, and the events it accepted; a
    rejected event fails the run (the sample traffic is valid)."""
    summary = ingest.IngestSummary(source=str(path))
    with psycopg.connect(url, autocommit=True) as conn, path.open("rb") as handle:
        started = time.perf_counter()
        ingest.ingest_handle(conn, handle, summary, batch_events=batch_events)
        seconds = time.perf_counter() - started
    if summary.rejected:
        raise SystemExit(f"the ingest refused sample events at {url}: {summary.rejects[:3]}")
    return seconds, summary.accepted


def dashboard_ms(url: str, users: list[str], repeats: int) -> float:
    """Median milliseconds of one user's 7-day dashboard (every query of `trackschema
    dashboard`), over `repeats` rounds of `users`, after one untimed warm-up round."""
    timings: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        today = db_today(conn)
        first = today - timedelta(days=6)
        for round_no in range(repeats + 1):
            for user in users:
                started = time.perf_counter()
                dashboard.dashboard(conn, user, first, today)
                if round_no:
                    timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def measure(single_server_url: str, cluster: CitusCluster, *, events: int, days: int = 3, per_line: int = 100,
            batch_events: int | None = None, dashboards: int = 5, repeats: int = 3, shard_count: int | None = None,
            users: int = 1000,
            report: Callable[[str], None] = log) -> dict[str, object]:
    """Every figure of the module docstring, on databases this creates (named
    `bench_citus`, replaced if present) on `single_server_url` and on every node of
    `cluster`, and drops again. `shard_count` sets `citus.shard_count` for the Citus
    database before it is migrated (Citus's default: 32 shards per distributed table)."""
    batch = batch_events or ingest.IngestOptions().batch_events
    try:
        single_url = create_database(single_server_url, DATABASE)
        started = time.perf_counter()
        runner.upgrade(Settings(database_url=single_url), "head")
        upgrade_single = time.perf_counter() - started
        citus_url = cluster.create_database(DATABASE)
        if shard_count is not None:
            with psycopg.connect(citus_url, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} SET citus.shard_count = {}").format(
                    sql.Identifier(DATABASE), sql.Literal(int(shard_count))))
        with psycopg.connect(citus_url, autocommit=True) as conn:
            shards = conn.execute("SHOW citus.shard_count").fetchone()[0]  # type: ignore[index]
        started = time.perf_counter()
        runner.upgrade(Settings(database_url=citus_url), "head")
        upgrade_citus = time.perf_counter() - started
        with psycopg.connect(citus_url, autocommit=True) as conn:
            distributed = conn.execute("SELECT count(*) FROM pg_dist_partition").fetchone()[0]  # type: ignore[index]
            analytics_distributed = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'analytics_page_views'::regclass)").fetchone()[0]  # type: ignore[index]
            now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        report(f"upgrade head: single {upgrade_single:.2f}s, Citus {upgrade_citus:.2f}s "
               f"({distributed} distributed or reference tables, {shards} shards per distributed table)")
        if not distributed:
            report("  the Citus database holds no distributed table: every figure below is of local tables on the coordinator")

        with tempfile.TemporaryDirectory(prefix="bench_citus_") as tmp:
            halves = [Path(tmp) / "first.jsonl", Path(tmp) / "second.jsonl"]
            lines = write_traffic(halves, events, users=users, now=now, days=days, per_line=per_line, seed=11)
            report(f"{events:,} events of {users:,} user codes in {lines:,} lines, {days} days; batches of {batch:,} events")
            spent = {"single": 0.0, "citus": 0.0}
            accepted = {"single": 0, "citus": 0}
            cpu = {name: 0.0 for name in cluster.nodes}
            single_node = _single_node(single_server_url)
            single_cpu = 0.0
            for number, half in enumerate(halves):
                for side in (("single", "citus") if number % 2 == 0 else ("citus", "single")):
                    if side == "citus":
                        before = {name: node_cpu_seconds(node) for name, node in cluster.nodes.items()}
                        seconds, count = ingest_file(citus_url, half, batch)
                        for name, node in cluster.nodes.items():
                            cpu[name] += node_cpu_seconds(node) - before[name]
                    else:
                        start_cpu = node_cpu_seconds(single_node) if single_node else 0.0
                        seconds, count = ingest_file(single_url, half, batch)
                        single_cpu += (node_cpu_seconds(single_node) - start_cpu) if single_node else 0.0
                    spent[side] += seconds
                    accepted[side] += count
        if accepted["single"] != accepted["citus"]:
            raise SystemExit(f"the two sides accepted different numbers of events: {accepted}")

        aggregated: dict[str, tuple[object, ...]] = {}
        rollup_s: dict[str, float] = {}
        for side, url in (("single", single_url), ("citus", citus_url)):
            with psycopg.connect(url, autocommit=True) as conn:
                started = time.perf_counter()
                rollups.aggregate_pending(conn)
                rollup_s[side] = time.perf_counter() - started
                aggregated[side] = tuple(conn.execute(ROLLUP_FIGURES).fetchone() or ())
        if aggregated["single"] != aggregated["citus"]:
            raise SystemExit(f"the roll-ups differ between one server and Citus: {aggregated}")

        with psycopg.connect(single_url, autocommit=True) as conn:
            busiest = [r[0] for r in conn.execute(
                "SELECT user_code FROM analytics_sessions GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s", (dashboards,)).fetchall()]
        board = {side: dashboard_ms(url, busiest, repeats) for side, url in (("single", single_url), ("citus", citus_url))}
    finally:
        for drop in (lambda: drop_database(single_server_url, DATABASE), lambda: cluster.drop_database(DATABASE)):
            try:
                drop()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass

    per_cpu = {name: round(accepted["citus"] / seconds) if seconds > 0 else None for name, seconds in cpu.items()}
    per_cpu["single"] = round(accepted["single"] / single_cpu) if single_cpu > 0 else None
    workers = len(cluster.workers)
    figures: dict[str, object] = {
        "ingest_events_per_s_citus": round(accepted["citus"] / spent["citus"]),
        "ingest_events_per_s_single": round(accepted["single"] / spent["single"]),
        "ratio": round(spent["single"] / spent["citus"], 3),
        "ingest_events_per_cpu_s": per_cpu,
        "dashboard_ms_citus": round(board["citus"], 2),
        "dashboard_ms_single": round(board["single"], 2),
        "rollup_s_citus": round(rollup_s["citus"], 3),
        "rollup_s_single": round(rollup_s["single"], 3),
        "upgrade_head_s_citus": round(upgrade_citus, 2),
        "upgrade_head_s_single": round(upgrade_single, 2),
        "distributed_tables": distributed,
        "shard_count": int(shards),
        "analytics_distributed": analytics_distributed,
        "events": accepted["citus"],
        "users": users,
        "workers": workers,
        "cores": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    report(f"ingest: single {figures['ingest_events_per_s_single']:,} events/s, Citus {figures['ingest_events_per_s_citus']:,} "
           f"events/s (ratio {figures['ratio']}, {workers} workers and the coordinator sharing {os.cpu_count()} cores)")
    report("  events per server CPU-second: " + ", ".join(f"{k} {v:,}" if v else f"{k} -" for k, v in per_cpu.items()))
    report(f"roll-up: single {rollup_s['single']:.2f}s, Citus {rollup_s['citus']:.2f}s (the same figures)")
    report(f"dashboard (7 days, median of {repeats} x {len(busiest)}): single {board['single']:.1f} ms, Citus {board['citus']:.1f} ms")
    return figures


def _single_node(server_url: str) -> LocalCluster | None:
    """The local cluster behind `server_url` when this process can see its data directory
    (a server it started), for its CPU time; None for a server given by URL."""
    return _SINGLE.get(server_url)


_SINGLE: dict[str, LocalCluster] = {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k events, 2 dashboard rounds: under a minute on 2 cores")
    parser.add_argument("--events", type=int, help="events to ingest on each side (default 200,000; --quick 20,000)")
    parser.add_argument("--workers", type=int, default=2, help="Citus workers (default 2)")
    parser.add_argument("--days", type=int, default=3, help="days of sample traffic")
    parser.add_argument("--users", type=int, default=1000, help="user codes the traffic is spread over (default 1,000)")
    parser.add_argument("--shard-count", type=int, help="shards per distributed table (default: Citus's 32)")
    parser.add_argument("--database-url", help="a PostgreSQL server for the single side (default: a local throwaway one)")
    args = parser.parse_args(argv)
    events = args.events or (20_000 if args.quick else 200_000)
    server = provision(args.database_url)
    if isinstance(server.handle, LocalCluster):
        _SINGLE[server.url] = server.handle
    cluster = start_citus(args.workers)
    try:
        log(f"single: {server.detail}")
        log(f"citus: {cluster.describe()}")
        figures = measure(server.url, cluster, events=events, days=args.days, repeats=2 if args.quick else 5,
                          shard_count=args.shard_count, users=args.users)
    finally:
        cluster.destroy()
        server.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
