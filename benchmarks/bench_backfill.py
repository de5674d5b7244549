"""Benchmark: the promotion backfill and the dual-write trigger (issue 3).

Measured in one run on one server, each against a baseline from the same run:

1. backfill throughput: the batched, checkpointed engine (`trackschema backfill run`,
   default options) against one single-statement UPDATE of the same rows; both on a fresh
   copy of the same expanded table, both through the dual-write trigger; repeated in
   pairs, the median pair counts. Goal >= 0.9x.
2. application writers: single-row transactions from W threads, ops/s while the backfill
   runs against ops/s in idle windows just before and just after it, on the same copy of
   the table. Goal >= 0.8x. Measured again with the backfill throttled (--sleep).
3. COPY into context_events with the dual-write trigger against the same COPY without it
   (each on a fresh copy of the table). Goal >= 0.8x.

Wall-clock ratios are the result; on a shared machine they are noisy, so where the server
runs on this machine the backend's own CPU time (/proc/<pid>/schedstat) is shown beside.

    python benchmarks/bench_backfill.py [--rows 1000000] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trackschema.migrations import runner as migrate  # noqa: E402
from trackschema.runtime import scratch
from trackschema.promotions import backfill, expressions  # noqa: E402
from trackschema.promotions.declarations import PROMOTIONS  # noqa: E402
from trackschema.runtime.provision import provision  # noqa: E402
from trackschema.runtime.settings import Settings, libpq_url, parse_duration  # noqa: E402

TEMPLATE = f"bench_backfill_{os.getpid()}"
ROADMAP_ITEMS = 1_000

LEGACY_ROWS = """
WITH ids AS (SELECT array_agg(id ORDER BY id) AS a FROM roadmap_items)
INSERT INTO context_events (context_id, created_by, title, start_at, metadata)
SELECT gen_random_uuid(), gen_random_uuid(), 'Event ' || g, now() - make_interval(mins => g),
       CASE g %% 4
           WHEN 0 THEN jsonb_build_object('source', 'guardrails', 'roadmap_item_id', ids.a[1 + g %% cardinality(ids.a)], 'n', g)
           WHEN 1 THEN jsonb_build_object('source', 'trip', 'itinerary_item_id', gen_random_uuid(), 'n', g)
           WHEN 2 THEN jsonb_build_object('source', 'planner', 'n', g)
           ELSE jsonb_build_object('n', g)
       END
FROM generate_series(%(lo)s::int, %(hi)s::int) AS g, ids
"""


@dataclass
class Measure:
    seconds: float
    cpu: float | None
    count: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def cpu_rate(self) -> float | None:
        return self.count / self.cpu if self.cpu else None


@dataclass
class Result:
    name: str
    baseline_label: str
    baseline: Measure
    label: str
    measured: Measure
    goal: float
    notes: dict[str, Any] = field(default_factory=dict)
    paired: list[float] | None = None  # per-pair ratios of repeated runs; the median is the ratio

    @property
    def ratio(self) -> float:
        if self.paired:
            return sorted(self.paired)[len(self.paired) // 2]
        return self.measured.rate / self.baseline.rate if self.baseline.rate else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        if self.measured.cpu_rate and self.baseline.cpu_rate:
            return self.measured.cpu_rate / self.baseline.cpu_rate
        return None

    def line(self) -> str:
        cpu = f"; backend CPU {self.cpu_ratio:.2f}x" if self.cpu_ratio else ""
        if self.paired:
            cpu += f"; median of {len(self.paired)} paired runs: " + ", ".join(f"{r:.2f}" for r in self.paired)
        verdict = "ok" if self.ratio >= self.goal else "BELOW GOAL"
        return (f"{self.name}: {self.baseline_label} {self.baseline.rate:,.0f}/s ({self.baseline.count:,} in {self.baseline.seconds:.2f}s) | "
                f"{self.label} {self.measured.rate:,.0f}/s ({self.measured.count:,} in {self.measured.seconds:.2f}s) "
                f"-> {self.ratio:.2f}x (goal >= {self.goal:.2f}x, {verdict}{cpu})")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ratio": self.ratio, "cpu_ratio": self.cpu_ratio, "goal": self.goal, "paired": self.paired,
                "baseline": {"label": self.baseline_label, **asdict(self.baseline)},
                "measured": {"label": self.label, **asdict(self.measured)}, "notes": self.notes}


class Server:
    def __init__(self, url: str) -> None:
        self.url = libpq_url(url)
        self._n = 0

    def db_url(self, name: str) -> str:
        return scratch.database_url(self.url, name)

    def clone(self, prefix: str) -> str:
        self._n += 1
        name = f"{prefix}_{os.getpid()}_{self._n}"
        scratch.create_database(self.url, name, template=TEMPLATE)
        return name

    def drop(self, name: str) -> None:
        scratch.drop_database(self.url, name)


def backend_cpu(conn: psycopg.Connection) -> float | None:
    """Seconds of CPU the connection's backend has used (None when the server is not local)."""
    try:
        with open(f"/proc/{conn.info.backend_pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except OSError:
        return None


def build_template(server: Server, rows: int) -> None:
    """context_events with `rows` rows written before expand (JSON only), then expanded."""
    url = scratch.create_database(server.url, TEMPLATE)
    settings = Settings(database_url=url, statement_timeout=3600)
    migrate.upgrade(settings, "0001_core_schema")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO roadmap_items (master_project_id, title) SELECT gen_random_uuid(), 'item ' || g FROM generate_series(1, %s) g",
                     (ROADMAP_ITEMS,))
        step = 200_000
        for lo in range(1, rows + 1, step):
            conn.execute(LEGACY_ROWS, {"lo": lo, "hi": min(rows, lo + step - 1)})
    migrate.upgrade(settings, "0020_promotion_expand")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def single_update(server: Server) -> Measure:
    """The one-statement backfill: the engine's own UPDATE without a page range."""
    name = server.clone("bench_single")
    try:
        with psycopg.connect(server.db_url(name), autocommit=True) as conn:
            conn.execute("SET jit = off")
            conn.execute("SET statement_timeout = 0")
            statement = expressions.fill_statement("context_events", list(PROMOTIONS), reference_checked=False)
            cpu0, t0 = backend_cpu(conn), time.monotonic()
            with conn.transaction():
                conn.execute("SET LOCAL trackschema.maintenance = 'on'")
                count = conn.execute(statement).rowcount
            seconds, cpu1 = time.monotonic() - t0, backend_cpu(conn)
        return Measure(seconds, cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None, count)
    finally:
        server.drop(name)


def batched(server: Server) -> tuple[Measure, dict[str, Any]]:
    """The engine with default options on a fresh copy of the table."""
    name = server.clone("bench_batched")
    try:
        with psycopg.connect(server.db_url(name), autocommit=True) as conn:
            cpu0, t0 = backend_cpu(conn), time.monotonic()
            result = backfill.run_on(conn, list(PROMOTIONS), backfill.BackfillOptions())
            seconds, cpu1 = time.monotonic() - t0, backend_cpu(conn)
        table = result.tables[0]
        run = Measure(seconds, cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None, table.rows_done)
        return run, {"batches": table.batches, "retries": table.retries, "rows_total": table.rows_total}
    finally:
        server.drop(name)


def writers_around_backfill(server: Server, writers: int, seconds: float, old_row_updates: float, warmup: float,
                            options: backfill.BackfillOptions) -> tuple[Measure, Measure, Measure, dict[str, Any]]:
    """Writer processes on one fresh copy of the table, measured in adjacent windows: `seconds` idle,
    then for the whole backfill, then `seconds` idle again. The idle baseline is the two idle
    windows together, so a load change on a shared machine weighs on both sides."""
    name = server.clone("bench_writers")
    url = server.db_url(name)
    stop, counter = multiprocessing.Event(), WriterCounter()
    threads = [multiprocessing.Process(target=writer, args=(url, stop, counter, seed, old_row_updates)) for seed in range(writers)]
    try:
        for t in threads:
            t.start()
        time.sleep(warmup)
        ops0, t0 = counter.ops, time.monotonic()
        time.sleep(seconds)
        ops1, t1 = counter.ops, time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            result = backfill.run_on(conn, list(PROMOTIONS), options)
        ops2, t2 = counter.ops, time.monotonic()
        time.sleep(seconds)
        ops3, t3 = counter.ops, time.monotonic()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.drop(name)
    if counter.errors:
        raise RuntimeError(f"a writer failed: {counter.errors[0]}")
    table = result.tables[0]
    idle = Measure((t1 - t0) + (t3 - t2), None, (ops1 - ops0) + (ops3 - ops2))
    during = Measure(t2 - t1, None, ops2 - ops1)
    run = Measure(t2 - t1, None, table.rows_done)
    notes = {"batches": table.batches, "retries": table.retries, "backfill_rows_per_s": run.rate,
             "idle_before_per_s": (ops1 - ops0) / (t1 - t0), "idle_after_per_s": (ops3 - ops2) / (t3 - t2)}
    return idle, during, run, notes


class WriterCounter:
    """Ops done by all writer processes, and the first error any of them hit."""

    def __init__(self) -> None:
        self.done = multiprocessing.Value("q", 0)
        self.failed = multiprocessing.Array("c", 500)

    @property
    def ops(self) -> int:
        return int(self.done.value)

    @property
    def errors(self) -> list[str]:
        text = self.failed.value.decode()
        return [text] if text else []


def writer(url: str, stop: Any, counter: WriterCounter, seed: int, old_row_updates: float) -> None:
    """One application process with one connection: single-row transactions. Mostly
    inserts of new events (JSON written, so the dual-write trigger works on each), then
    updates of an event it wrote recently, and a share `old_row_updates` of updates to random
    old rows (those can meet a row the backfill holds). Separate processes, so the clients
    are not what limits the rate."""
    rnd = random.Random(seed)
    mine: list[Any] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            old_ids = [r[0] for r in conn.execute("SELECT id FROM context_events TABLESAMPLE SYSTEM (1) LIMIT 5000").fetchall()] or [None]
            items = [str(r[0]) for r in conn.execute("SELECT id FROM roadmap_items LIMIT 100").fetchall()]
            while not stop.is_set():
                roll = rnd.random()
                if roll < old_row_updates and old_ids[0] is not None:
                    conn.execute("UPDATE context_events SET metadata = metadata || '{\"seen\": true}' WHERE id = %s", (rnd.choice(old_ids),))
                elif roll < old_row_updates + 0.2 and mine:
                    conn.execute("UPDATE context_events SET metadata = metadata || jsonb_build_object('source', 'planner') WHERE id = %s",
                                 (rnd.choice(mine[-50:]),))
                else:
                    md = rnd.choice([{"source": "guardrails", "roadmap_item_id": rnd.choice(items)},
                                     {"source": "trip", "itinerary_item_id": str(uuid.uuid4())}, {"source": "planner"}, {}])
                    row = conn.execute(
                        "INSERT INTO context_events (context_id, created_by, title, start_at, metadata) "
                        "VALUES (gen_random_uuid(), gen_random_uuid(), 'live', now(), %s) RETURNING id", (json.dumps(md),)
                    ).fetchone()
                    mine.append(row[0])  # type: ignore[index]
                with counter.done.get_lock():
                    counter.done.value += 1
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        counter.failed.value = f"{type(exc).__name__}: {exc}".encode()[:499]


def copy_rows(count: int, items: list[str]) -> bytes:
    rnd = random.Random(1)
    lines = []
    for g in range(count):
        md: dict[str, Any] = {"n": g}
        kind = g % 4
        if kind == 0:
            md.update(source="guardrails", roadmap_item_id=rnd.choice(items))
        elif kind == 1:
            md.update(source="trip", itinerary_item_id=str(uuid.uuid4()))
        elif kind == 2:
            md.update(source="planner")
        lines.append(f"{uuid.uuid4()}\t{uuid.uuid4()}\tcopied {g}\t2026-01-01T00:00:00Z\t{json.dumps(md)}\n")
    return "".join(lines).encode()


def copy_once(server: Server, data: bytes, count: int, *, trigger: bool) -> Measure:
    name = server.clone("bench_copy")
    try:
        with psycopg.connect(server.db_url(name), autocommit=True) as conn:
            conn.execute("SET jit = off")
            if not trigger:
                conn.execute("DROP TRIGGER context_events_promote_metadata ON context_events")
            cpu0, t0 = backend_cpu(conn), time.monotonic()
            with conn.cursor().copy("COPY context_events (context_id, created_by, title, start_at, metadata) FROM STDIN") as copy:
                copy.write(data)
            seconds, cpu1 = time.monotonic() - t0, backend_cpu(conn)
            filled = conn.execute("SELECT count(source_type) FROM context_events WHERE title LIKE 'copied %%'").fetchone()[0]  # type: ignore[index]
            assert (filled > 0) == trigger, "the trigger must fill the columns, and only with the trigger"
        return Measure(seconds, cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None, count)
    finally:
        server.drop(name)


def median_measure(ms: list[Measure]) -> Measure:
    return sorted(ms, key=lambda m: m.seconds)[len(ms) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in context_events (default 1,000,000)")
    parser.add_argument("--copy-rows", type=int, default=None, help="rows per COPY (default rows/10, at most 100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="paired single-UPDATE/batched runs (the median pair ratio counts)")
    parser.add_argument("--copy-repeat", type=int, default=5, help="paired COPY runs (the median pair ratio counts)")
    parser.add_argument("--throttle", default="200ms", help="--sleep of the throttled backfill measured with writers (0 skips it)")
    parser.add_argument("--writers", type=int, default=4, help="application writer threads")
    parser.add_argument("--writer-seconds", type=float, default=10.0, help="idle writer measurement length")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds writers run before a measurement starts")
    parser.add_argument("--old-row-updates", type=float, default=0.1, help="share of writer ops updating random old rows")
    parser.add_argument("--database-url", default=None, help="a server to create databases on (default: provision one)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    copy_count = args.copy_rows or max(100, min(100_000, args.rows // 10))

    server_handle = provision(args.database_url)
    server = Server(server_handle.url)
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    try:
        t = time.monotonic()
        build_template(server, args.rows)
        log(f"[bench] template: {args.rows:,} rows, expanded, in {time.monotonic() - t:.1f}s ({server_handle.detail})")

        singles, engines, pairs = [], [], []
        for _ in range(args.repeat):
            single = single_update(server)
            engine, notes = batched(server)
            singles.append(single)
            engines.append(engine)
            pairs.append(round(engine.rate / single.rate, 3))
            log(f"[bench] single UPDATE {single.count:,} rows in {single.seconds:.1f}s; batched {engine.seconds:.1f}s, "
                f"{notes['batches']} batches -> {pairs[-1]:.2f}")
        results = [Result("backfill", "single UPDATE", median_measure(singles), "batched engine", median_measure(engines), 0.9,
                          notes, paired=pairs)]

        sleeps = [0.0] + ([parse_duration(args.throttle)] if parse_duration(args.throttle) > 0 else [])
        for pause in sleeps:
            idle, during, run, wnotes = writers_around_backfill(
                server, args.writers, args.writer_seconds, args.old_row_updates, args.warmup, backfill.BackfillOptions(sleep=pause))
            label = "during backfill" if not pause else f"during backfill --sleep {pause:g}s"
            log(f"[bench] writers idle {idle.rate:,.0f} ops/s, {label} {during.rate:,.0f} ops/s (backfill {run.rate:,.0f} rows/s)")
            results.append(Result("writers" if not pause else "writers (throttled)", f"{args.writers} writers idle", idle, label, during, 0.8,
                                  {**wnotes, "old_row_updates": args.old_row_updates, "backfill_sleep": pause}))

        with psycopg.connect(server.db_url(TEMPLATE)) as conn:
            items = [str(r[0]) for r in conn.execute("SELECT id FROM roadmap_items").fetchall()]
        data = copy_rows(copy_count, items)
        without, with_trigger = [], []
        for _ in range(args.copy_repeat):
            without.append(copy_once(server, data, copy_count, trigger=False))
            with_trigger.append(copy_once(server, data, copy_count, trigger=True))
        log(f"[bench] COPY {copy_count:,} rows x{args.copy_repeat}: ratios " +
            ", ".join(f"{w.seconds / m.seconds:.2f}" for w, m in zip(without, with_trigger)))
        results.append(Result("copy", "COPY without trigger", median_measure(without), "COPY with dual-write", median_measure(with_trigger), 0.8,
                              {"rows_per_copy": copy_count, "runs": args.copy_repeat},
                              paired=[round(w.seconds / m.seconds, 3) for w, m in zip(without, with_trigger)]))
    finally:
        server.drop(TEMPLATE)
        server_handle.stop()

    if args.json:
        print(json.dumps({"rows": args.rows, "results": [r.to_dict() for r in results]}, indent=2))
    else:
        print(f"bench_backfill: {args.rows:,} rows in context_events")
        for r in results:
            print("  " + r.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
