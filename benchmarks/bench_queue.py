"""Consumers of the entity_events outbox: what a worker does per event, against reading the
same events alone, measured in one run.

    python benchmarks/bench_queue.py [--events 100000] [--batch 1000] [--repeat 3] [--database-url URL]

Figures (medians over --repeat rounds; each round commits --events tracked changes,
bulk UPDATEs of entities, for consumers registered before them):
- baseline: one connection reading the round's window (trackschema.consumer_window_events
  between the consumers' snapshot and a new one, in id order) and nothing else;
- 1 worker of one consumer, no-op handler: the window, then per --batch events one
  transaction that locks the consumer, runs the handler and commits the new position;
- 2 workers of one consumer (threads, one connection each): one works, the other is its
  standby (a consumer is handled by one worker at a time, so its events stay in order);
- 2 consumers with a worker each: every event goes to both (events/s counts both);
- 2 workers of one consumer with the default propagation handler on tracking events that
  carry goal progress (each event writes a goal_events row).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable

import psycopg

from trackschema.runtime import scratch
from trackschema.runtime.provision import provision
from trackschema.runtime.settings import Settings
from trackschema.tracking import queue

NOOP = "trackschema.tracking.handlers:noop"


def run_workers(settings: Settings, consumers: list[str], workers_each: int, expected: int, batch: int, handler: str = NOOP) -> float:
    """Workers (threads) per consumer until each consumer has handled `expected` events;
    seconds from their start to the commit of the last batch."""
    done_at: dict[str, float] = {}
    stop = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def on_batch(name: str) -> Callable[[queue.WorkResult], None]:
        def record(result: queue.WorkResult) -> None:
            if result.completed >= expected:
                with lock:
                    done_at.setdefault(name, time.perf_counter())
                    if len(done_at) == len(consumers):
                        stop.set()
        return record

    def one(name: str, i: int) -> None:
        try:
            queue.work(settings, handler, queue.WorkerOptions(consumer=name, handler=handler, batch=batch, idle_sleep=0.05, name=f"{name}-{i}"),
                       stop=stop, on_batch=on_batch(name))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=one, args=(name, i)) for name in consumers for i in range(workers_each)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(600)
    stop.set()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    if len(done_at) != len(consumers):
        raise RuntimeError(f"consumers did not finish: {sorted(set(consumers) - set(done_at))}")
    return max(done_at.values()) - started


def raw_read(conn: psycopg.Connection, consumer: str, batch: int) -> tuple[float, int]:
    """Read the consumer's window (as a worker does) and nothing else; the consumer does not move."""
    started = time.perf_counter()
    with conn.cursor(name="raw_window", withhold=True) as cur:
        cur.execute("""SELECT w.id, w.entity_id, w.table_name, w.action, w.occurred_at
                         FROM trackschema.consumers c
                        CROSS JOIN LATERAL trackschema.consumer_window_events(c.snapshot, pg_current_snapshot()) AS w
                        WHERE c.name = %s ORDER BY w.id""", (consumer,))
        read = 0
        while rows := cur.fetchmany(batch):
            read += len(rows)
    return time.perf_counter() - started, read


def commit_changes(conn: psycopg.Connection, n: int, tag: str) -> None:
    conn.execute("UPDATE entities SET status = %s WHERE id IN (SELECT id FROM entities ORDER BY id LIMIT %s)", (tag, n))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="a server to use instead of a private local cluster")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    server = provision(args.database_url)
    name = f"bench_queue_{os.getpid()}"
    raw, one, two, fan, prop = [], [], [], [], []
    try:
        url = scratch.create_database(server.url, name, upgrade_to="head")
        settings = Settings(database_url=url)
        with psycopg.connect(url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
            conn.execute("ALTER TABLE entities DISABLE TRIGGER USER")
            conn.execute("""INSERT INTO entities (entity_type_id, data)
                            SELECT (SELECT id FROM entity_types), jsonb_build_object('n', g) FROM generate_series(1, %s) g""", (args.events,))
            conn.execute("ALTER TABLE entities ENABLE TRIGGER USER")
            for r in range(args.repeat):
                consumers = [f"r{r}_{kind}" for kind in ("raw", "one", "two", "fan_a", "fan_b")]
                for consumer in consumers:
                    conn.execute("SELECT trackschema.consumer_register(%s, %s, 5)", (consumer, NOOP))
                commit_changes(conn, args.events, f"round{r}")
                conn.execute("VACUUM ANALYZE entity_events")
                seconds, read = raw_read(conn, consumers[0], args.batch)
                assert read == args.events, (read, args.events)
                raw.append(read / seconds)
                one.append(args.events / run_workers(settings, [consumers[1]], 1, args.events, args.batch))
                two.append(args.events / run_workers(settings, [consumers[2]], 2, args.events, args.batch))
                fan.append(2 * args.events / run_workers(settings, consumers[3:], 1, args.events, args.batch))
            # propagation: tracking events whose handler writes goal_events
            prop_events = max(args.events // 5, 10)
            for i in range(args.repeat):
                consumer = f"propagate_{i}"
                conn.execute("SELECT trackschema.consumer_register(%s, %s, 5)", (consumer, queue.DEFAULT_HANDLER))
                conn.execute(
                    """UPDATE entities SET data = jsonb_build_object('goal_id', gen_random_uuid(), 'progress', %s)
                        WHERE id IN (SELECT id FROM entities ORDER BY id LIMIT %s)""", (10 * (i + 1), prop_events))
                prop.append(prop_events / run_workers(settings, [consumer], 2, prop_events, args.batch, queue.DEFAULT_HANDLER))
            goal_events = conn.execute("SELECT count(*) FROM goal_events").fetchone()[0]  # type: ignore[index]
    finally:
        scratch.drop_database(server.url, name)
        server.stop()

    med = {k: statistics.median(v) for k, v in (("raw", raw), ("one", one), ("two", two), ("fan", fan), ("prop", prop))}
    figures = {
        "events": float(args.events),
        "baseline_read_per_s": med["raw"],
        "one_worker_per_s": med["one"],
        "two_workers_per_s": med["two"],
        "two_consumers_per_s": med["fan"],
        "one_worker_vs_baseline": med["one"] / med["raw"],
        "propagate_two_workers_per_s": med["prop"],
        "goal_events_written": float(goal_events),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return figures
    print(f"bench_queue: {args.events:,} events a round, batch {args.batch}, PostgreSQL {version} ({server.kind}), medians of {args.repeat} rounds")
    print(f"  baseline: reading the window alone, 1 connection          {med['raw']:10,.0f} events/s   1.00x")
    print(f"  1 worker of one consumer (no-op handler)                  {med['one']:10,.0f} events/s   {figures['one_worker_vs_baseline']:.2f}x")
    print(f"  2 workers of one consumer (one works, one standby)        {med['two']:10,.0f} events/s   {med['two'] / med['raw']:.2f}x")
    print(f"  2 consumers, 1 worker each (every event to both)          {med['fan']:10,.0f} events/s   {med['fan'] / med['raw']:.2f}x")
    print(f"  2 workers, propagation handler on {prop_events:,} tracking events  {med['prop']:10,.0f} events/s"
          f"   {med['prop'] / med['raw']:.2f}x ({goal_events:,} goal events written)")
    return figures


if __name__ == "__main__":
    main()
