"""event_queue throughput: two workers claiming and completing events, against the
cheapest way to remove the same events in batches, measured in one run.

    python benchmarks/bench_queue.py [--events 100000] [--batch 500] [--repeat 3] [--database-url URL]

Figures (medians over --repeat rounds):
- baseline: one connection deleting the events in batches of --batch with
  DELETE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n): no lease, no
  handler transaction, no retry bookkeeping;
- 1 worker and 2 workers (threads, one connection each) running `trackschema queue work
  --once` with the no-op handler: claim (lease committed), lock + complete in the handler
  transaction; events/s claimed and completed;
- 2 workers with the default propagation handler on tracking events (entity updates
  carrying goal progress, so each event writes a goal_events row).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

import psycopg

from trackschema.tracking import queue
from trackschema.runtime import scratch
from trackschema.runtime.provision import provision
from trackschema.runtime.settings import Settings


def fill(conn: psycopg.Connection, n: int) -> None:
    conn.execute("TRUNCATE event_queue")
    conn.execute("INSERT INTO event_queue (event_type, payload) SELECT 'bench.event', jsonb_build_object('n', g) FROM generate_series(1, %s) g", (n,))
    conn.execute("VACUUM ANALYZE event_queue")


def raw_drain(conn: psycopg.Connection, batch: int) -> float:
    started = time.perf_counter()
    while True:
        cur = conn.execute(
            "DELETE FROM event_queue WHERE id IN (SELECT id FROM event_queue ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)", (batch,)
        )
        if cur.rowcount == 0:
            return time.perf_counter() - started


def run_workers(settings: Settings, workers: int, batch: int, handler: str) -> tuple[float, int]:
    results: list[queue.WorkResult] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results.append(queue.work(settings, handler, queue.WorkerOptions(batch=batch, once=True, name=f"bench-{i}")))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, sum(r.completed for r in results)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="a server to use instead of a private local cluster")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    server = provision(args.database_url)
    name = f"bench_queue_{os.getpid()}"
    raw, one, two, prop = [], [], [], []
    try:
        url = scratch.create_database(server.url, name, upgrade_to="head")
        settings = Settings(database_url=url)
        with psycopg.connect(url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            for _ in range(args.repeat):
                fill(conn, args.events)
                raw.append(args.events / raw_drain(conn, args.batch))
                for workers, sink in ((1, one), (2, two)):
                    fill(conn, args.events)
                    elapsed, done = run_workers(settings, workers, args.batch, "trackschema.tracking.handlers:noop")
                    assert done == args.events, (done, args.events)
                    sink.append(done / elapsed)
            # propagation: tracking events whose handler writes goal_events
            prop_events = max(args.events // 5, 10)
            conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
            conn.execute(
                """INSERT INTO entities (entity_type_id, data)
                   SELECT (SELECT id FROM entity_types), jsonb_build_object('goal_id', gen_random_uuid(), 'progress', 0)
                     FROM generate_series(1, %s)""",
                (prop_events,),
            )
            for i in range(args.repeat):
                conn.execute("TRUNCATE event_queue")
                conn.execute("UPDATE entities SET data = jsonb_set(data, '{progress}', to_jsonb(%s::int))", (10 * (i + 1),))
                elapsed, done = run_workers(settings, 2, args.batch, queue.DEFAULT_HANDLER)
                assert done == prop_events, (done, prop_events)
                prop.append(done / elapsed)
            goal_events = conn.execute("SELECT count(*) FROM goal_events").fetchone()[0]  # type: ignore[index]
    finally:
        scratch.drop_database(server.url, name)
        server.stop()

    med = {k: statistics.median(v) for k, v in (("raw", raw), ("one", one), ("two", two), ("prop", prop))}
    figures = {
        "events": float(args.events),
        "baseline_delete_per_s": med["raw"],
        "one_worker_per_s": med["one"],
        "two_workers_per_s": med["two"],
        "two_workers_vs_baseline": med["two"] / med["raw"],
        "two_workers_vs_one": med["two"] / med["one"],
        "propagate_two_workers_per_s": med["prop"],
        "goal_events_written": float(goal_events),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return figures
    print(f"bench_queue: {args.events:,} events, batch {args.batch}, PostgreSQL {version} ({server.kind}), medians of {args.repeat} rounds")
    print(f"  baseline: batched DELETE ... SKIP LOCKED, 1 connection  {med['raw']:10,.0f} events/s   1.00x")
    print(f"  1 worker (claim + lock + complete, no-op handler)     {med['one']:10,.0f} events/s   {med['one'] / med['raw']:.2f}x")
    print(f"  2 workers                                             {med['two']:10,.0f} events/s   {figures['two_workers_vs_baseline']:.2f}x"
          f"   ({figures['two_workers_vs_one']:.2f}x one worker; goal >= 10,000/s)")
    print(f"  2 workers, propagation handler on {prop_events:,} tracking events  {med['prop']:10,.0f} events/s"
          f"   {med['prop'] / med['raw']:.2f}x")
    return figures


if __name__ == "__main__":
    main()
