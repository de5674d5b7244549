"""Online partitioning of a populated table: a concurrent writer's longest wait, and
insert throughput into the partitioned table against the plain one.

Builds `activity_log` with ROWS rows spread over two years on a throwaway server, then:

1. a writer inserts one row per transaction for a few seconds (baseline: its longest
   wait with nothing else going on);
2. the same writer runs while revision 0030 converts the table (prepare, validate,
   CREATE UNIQUE INDEX CONCURRENTLY, swap); its longest single insert is the figure,
   goal <= 1 s, and every row must be there afterwards;
3. insert throughput, 1000-row INSERT statements and single-row INSERTs, partitioned
   against plain, always interleaved so the machine's drifting load (other work shares
   its 2 cores) hits both alike: a plain copy of the history data (same rows, same
   indexes) against the partitioned table, and a fresh plain twin against next month's
   fresh partition; first from the client in ABBA rounds of `--seconds`
   (end to end, commits included, noisy), then statement by statement inside one backend
   (precise). Goal: ratio >= 0.9;
4. the downgrade back to a plain table with the writer running: how long the writer
   waits while the rows of the monthly partitions are copied (no goal: the cost as it is).

    python benchmarks/bench_partitions.py [--rows 5000000] [--seconds 1] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import psycopg
from psycopg import sql

from trackschema.migrations import runner as migrate
from trackschema.runtime import scratch
from trackschema.runtime.provision import provision
from trackschema.runtime.settings import Settings

CORE, PARTITIONED = "0001_core_schema", "0030_partition_tracking_tables"
FILL = """
INSERT INTO activity_log (id, user_id, entity_id, entity_type, action, occurred_at, meta)
SELECT gen_random_uuid(), (ARRAY[gen_random_uuid(), NULL])[1 + g %% 2], gen_random_uuid(), 'contact',
       (ARRAY['view', 'update', 'create', 'delete'])[1 + g %% 4],
       now() - make_interval(secs => (%(total)s::bigint - g) * %(spacing)s::float8), jsonb_build_object('n', g)
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
"""
BATCH = """
INSERT INTO {table} (user_id, entity_id, entity_type, action, occurred_at, meta)
SELECT gen_random_uuid(), gen_random_uuid(), 'contact', 'view', {when}, jsonb_build_object('n', g)
  FROM generate_series(1, 1000) AS g
"""
SINGLE = "INSERT INTO {table} (user_id, entity_id, entity_type, action, occurred_at) VALUES (gen_random_uuid(), gen_random_uuid(), 'contact', 'view', {when})"


class Writer(threading.Thread):
    """One row per transaction, as fast as it goes; remembers every insert's latency."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    conn.execute("INSERT INTO activity_log (action, occurred_at) VALUES ('writer', now())")
                except psycopg.Error as exc:
                    self.errors.append(str(exc).splitlines()[0])
                self.latencies.append(time.perf_counter() - started)

    def finish(self) -> "Writer":
        self.stop.set()
        self.join(60)
        return self

    def summary(self) -> tuple[int, float, float]:
        ordered = sorted(self.latencies)
        return len(ordered), ordered[-1], ordered[int(len(ordered) * 0.99) - 1] if len(ordered) > 100 else ordered[-1]


def rows_per_second(conn: psycopg.Connection, statement: sql.Composed, rows_each: int, seconds: float) -> float:
    """Run `statement` repeatedly for about `seconds`; rows inserted per second."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        conn.execute(statement)
        done += rows_each
    return done / (time.perf_counter() - started)


def throughput(conn: psycopg.Connection, table: str, when: str, seconds: float) -> tuple[float, float]:
    target = sql.Identifier(table)
    batch = sql.SQL(BATCH).format(table=target, when=sql.SQL(when))
    single = sql.SQL(SINGLE).format(table=target, when=sql.SQL(when))
    return rows_per_second(conn, batch, 1000, seconds), rows_per_second(conn, single, 1, seconds)


ALTERNATE = """
CREATE FUNCTION pg_temp.alternate(n integer) RETURNS float8[] LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz; single_a interval := '0'; single_b interval := '0'; batch_a interval := '0'; batch_b interval := '0';
BEGIN
    FOR i IN 1 .. n LOOP
        FOR k IN 0 .. 1 LOOP  -- ABBA: the target measured first changes every iteration
            IF (i + k) % 2 = 0 THEN
                t0 := clock_timestamp();
                INSERT INTO {plain} (user_id, entity_id, entity_type, action, occurred_at) VALUES (gen_random_uuid(), gen_random_uuid(), 'contact', 'view', {when});
                single_a := single_a + (clock_timestamp() - t0);
                IF i % 100 = 0 THEN
                    t0 := clock_timestamp();
                    INSERT INTO {plain} (user_id, entity_id, entity_type, action, occurred_at, meta)
                    SELECT gen_random_uuid(), gen_random_uuid(), 'contact', 'view', {when}, jsonb_build_object('n', g) FROM generate_series(1, 1000) AS g;
                    batch_a := batch_a + (clock_timestamp() - t0);
                END IF;
            ELSE
                t0 := clock_timestamp();
                INSERT INTO {part} (user_id, entity_id, entity_type, action, occurred_at) VALUES (gen_random_uuid(), gen_random_uuid(), 'contact', 'view', {when});
                single_b := single_b + (clock_timestamp() - t0);
                IF i % 100 = 0 THEN
                    t0 := clock_timestamp();
                    INSERT INTO {part} (user_id, entity_id, entity_type, action, occurred_at, meta)
                    SELECT gen_random_uuid(), gen_random_uuid(), 'contact', 'view', {when}, jsonb_build_object('n', g) FROM generate_series(1, 1000) AS g;
                    batch_b := batch_b + (clock_timestamp() - t0);
                END IF;
            END IF;
        END LOOP;
    END LOOP;
    RETURN ARRAY[extract(epoch FROM single_a), extract(epoch FROM single_b), extract(epoch FROM batch_a), extract(epoch FROM batch_b)];
END
$f$
"""


def statement_interleaved(conn: psycopg.Connection, plain: str, part: str, when: str, n: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Microseconds per statement (plain, partitioned): single-row INSERTs, then 1000-row ones (n / 100 of those)."""
    conn.execute("DROP FUNCTION IF EXISTS pg_temp.alternate(integer)")
    conn.execute(sql.SQL(ALTERNATE).format(plain=sql.Identifier(plain), part=sql.Identifier(part), when=sql.SQL(when)))
    single_a, single_b, batch_a, batch_b = conn.execute("SELECT pg_temp.alternate(%s)", (n,)).fetchone()[0]
    batches = max(n // 100, 1)
    return (single_a * 1e6 / n, single_b * 1e6 / n), (batch_a * 1e6 / batches, batch_b * 1e6 / batches)


def interleaved(conn: psycopg.Connection, plain: tuple[str, str], part: tuple[str, str], seconds: float, rounds: int):  # noqa: ANN201
    """Throughput of two targets measured in ABBA order; returns (plain runs, partitioned runs)."""
    plain_runs, part_runs = [], []
    for r in range(rounds):
        order = [(plain, plain_runs), (part, part_runs)]
        for (table, when), runs in (order if r % 2 == 0 else order[::-1]):
            runs.append(throughput(conn, table, when, seconds))
    return plain_runs, part_runs


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows in activity_log before the conversion")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each timed insert run")
    parser.add_argument("--rounds", type=int, default=10, help="timed runs per throughput figure (median)")
    parser.add_argument("--statements", type=int, default=20_000, help="single-row INSERTs per target in the statement-interleaved run")
    parser.add_argument("--database-url", help="a server to create the benchmark database on (default: a throwaway one)")
    args = parser.parse_args(argv)
    os.environ["TRACKSCHEMA_PARTITIONED_TABLES"] = "activity_log"
    server = provision(args.database_url)
    name = "bench_partitions"
    try:
        with scratch.scratch_database(server.url, name, upgrade_to=CORE) as url:
            return run(url, Settings(database_url=url), args)
    finally:
        server.stop()


def run(url: str, settings: Settings, args: argparse.Namespace) -> dict[str, float]:
    rounds = max(1, args.rounds)
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        spacing = 2 * 365 * 86400 / max(args.rows, 1)
        for lo in range(1, args.rows + 1, 500_000):
            conn.execute(FILL, {"lo": lo, "hi": min(args.rows, lo + 499_999), "total": args.rows, "spacing": spacing})
        conn.execute("VACUUM ANALYZE activity_log")
        fill_s = time.perf_counter() - started
        print(f"activity_log: {args.rows:,} rows over two years, 4 indexes (filled in {fill_s:.0f} s)")

        writer = Writer(url)
        writer.start()
        time.sleep(args.seconds)
        baseline = writer.finish().summary()
        print(f"writer alone: {baseline[0]:,} inserts in {args.seconds:.0f} s; longest {baseline[1] * 1000:.1f} ms, p99 {baseline[2] * 1000:.2f} ms")

        before = conn.execute("SELECT count(*) FROM activity_log").fetchone()[0]
        writer = Writer(url)
        writer.start()
        time.sleep(0.5)
        started = time.perf_counter()
        migrate.upgrade(settings, PARTITIONED)
        conversion_s = time.perf_counter() - started
        time.sleep(0.5)
        during = writer.finish().summary()
        after = conn.execute("SELECT count(*) FROM activity_log").fetchone()[0]
        kind = conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone()[0]
        lost = before + len(writer.latencies) - len(writer.errors) - after
        print(f"conversion of {before:,} rows took {conversion_s:.1f} s (activity_log relkind now {kind!r}); "
              f"writer meanwhile: {during[0]:,} inserts, {len(writer.errors)} errors, rows lost or duplicated: {lost}")
        print(f"  writer's longest wait: {during[1] * 1000:.0f} ms (alone: {baseline[1] * 1000:.1f} ms, ratio {during[1] / baseline[1]:.1f}x); "
              f"p99 {during[2] * 1000:.2f} ms; goal <= 1000 ms: {'met' if during[1] <= 1.0 else 'NOT met'}")

        # Interleaved (ABBA), so drift in the machine's load hits both sides alike.
        # 1. Same data: a plain copy of the history partition (CREATE TABLE AS, then the
        #    same indexes) against the partitioned table, rows dated now (they land in the
        #    history partition). Writing into a partition directly is no stand-in for a
        #    plain table: PostgreSQL then checks the partition constraint on every row.
        started = time.perf_counter()
        conn.execute("CREATE TABLE plain_full AS SELECT * FROM activity_log_history")
        for statement in (
            "ALTER TABLE plain_full ALTER id SET DEFAULT uuid_generate_v7(), ALTER id SET NOT NULL, ALTER occurred_at SET DEFAULT now()",
            "ALTER TABLE plain_full ADD PRIMARY KEY (id, occurred_at)",
            "CREATE INDEX ON plain_full (user_id, occurred_at DESC)",
            "CREATE INDEX ON plain_full (action, occurred_at DESC)",
            "CREATE INDEX ON plain_full (entity_id, occurred_at DESC)",
            "VACUUM ANALYZE plain_full",
        ):
            conn.execute(statement)
        print(f"plain copy of the {args.rows:,}-row history for the same-data comparison built in {time.perf_counter() - started:.0f} s")
        routed = interleaved(conn, ("plain_full", "now()"), ("activity_log", "now()"), args.seconds, rounds)
        # 2. Fresh structures: an empty plain table with the same columns and indexes
        #    against next month's empty partition.
        conn.execute("CREATE TABLE plain_twin (LIKE activity_log INCLUDING DEFAULTS INCLUDING INDEXES)")
        next_month = "date_trunc('month', now()) + interval '1 month 1 day'"
        fresh = interleaved(conn, ("plain_twin", next_month), ("activity_log", next_month), args.seconds, rounds)
        for title, (plain, part) in (("same data: a plain copy of the history vs the partitioned table", routed),
                                     ("fresh tables: empty plain twin vs next month's empty partition", fresh)):
            print(f"insert, interleaved, median of {rounds}, {title}:")
            for i, label in enumerate(("1000-row INSERTs", "single-row INSERTs")):
                a, b = statistics.median(x[i] for x in plain), statistics.median(x[i] for x in part)
                print(f"  {label}: plain {a:,.0f} rows/s, partitioned {b:,.0f} rows/s, ratio {b / a:.2f} (goal >= 0.9: {'met' if b / a >= 0.9 else 'NOT met'})")
        routed_ratio = [statistics.median(x[i] for x in routed[1]) / statistics.median(x[i] for x in routed[0]) for i in (0, 1)]
        fresh_ratio = [statistics.median(x[i] for x in fresh[1]) / statistics.median(x[i] for x in fresh[0]) for i in (0, 1)]

        # 3. Server-side, statement by statement: one PL/pgSQL loop alternates the two
        #    targets and times every statement with clock_timestamp(), so the machine's
        #    load hits both equally (no client round trip, one transaction).
        precise = {}
        for label, plain, part, when in (("same data", "plain_full", "activity_log", "now()"),
                                          ("fresh tables", "plain_twin", "activity_log", next_month)):
            precise[label] = statement_interleaved(conn, plain, part, when, args.statements)
            single, batch = precise[label]
            print(f"insert, statement-interleaved in one backend ({args.statements:,} of each), {label}:")
            print(f"  single-row INSERT: plain {single[0]:.1f} us, partitioned {single[1]:.1f} us per statement: throughput ratio {single[0] / single[1]:.2f}")
            print(f"  1000-row INSERT:   plain {batch[0]:.0f} us, partitioned {batch[1]:.0f} us per statement: throughput ratio {batch[0] / batch[1]:.2f}")

        # 4. The downgrade's cost, reported as it is: the rows of the monthly partitions
        #    are copied into the history table under ACCESS EXCLUSIVE.
        conn.execute("DROP TABLE plain_twin, plain_full")
        folded = conn.execute("SELECT count(*) FROM activity_log WHERE tableoid <> 'activity_log_history'::regclass").fetchone()[0]
        before_down = conn.execute("SELECT count(*) FROM activity_log").fetchone()[0]
        writer = Writer(url)
        writer.start()
        time.sleep(0.5)
        started = time.perf_counter()
        migrate.downgrade(settings, CORE)
        downgrade_s = time.perf_counter() - started
        time.sleep(0.5)
        down = writer.finish().summary()
        after_down = conn.execute("SELECT count(*) FROM activity_log").fetchone()[0]
        down_lost = before_down + len(writer.latencies) - len(writer.errors) - after_down
        print(f"downgrade to a plain table: {folded:,} rows folded in from the monthly partitions, took {downgrade_s:.1f} s; "
              f"writer meanwhile: {down[0]:,} inserts, {len(writer.errors)} errors, rows lost or duplicated: {down_lost}; "
              f"longest wait {down[1] * 1000:.0f} ms (the documented cost: the copy runs under ACCESS EXCLUSIVE)")
    return {
        "downgrade_s": downgrade_s, "downgrade_rows_folded": float(folded), "downgrade_writer_longest_s": down[1],
        "downgrade_rows_lost_or_duplicated": float(down_lost),
        "rows": float(args.rows), "fill_s": fill_s, "conversion_s": conversion_s,
        "writer_longest_wait_s": during[1], "writer_baseline_longest_s": baseline[1], "writer_p99_s": during[2],
        "writer_errors": float(len(writer.errors)), "rows_lost_or_duplicated": float(lost),
        "insert_ratio_statement_single": precise["same data"][0][0] / precise["same data"][0][1],
        "insert_ratio_statement_batch": precise["same data"][1][0] / precise["same data"][1][1],
        "insert_ratio_statement_fresh_single": precise["fresh tables"][0][0] / precise["fresh tables"][0][1],
        "insert_ratio_statement_fresh_batch": precise["fresh tables"][1][0] / precise["fresh tables"][1][1],
        "insert_ratio_routed_batch": routed_ratio[0], "insert_ratio_routed_single": routed_ratio[1],
        "insert_ratio_fresh_batch": fresh_ratio[0], "insert_ratio_fresh_single": fresh_ratio[1],
    }


if __name__ == "__main__":
    main()
