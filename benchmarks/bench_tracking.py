"""Cost of entity change tracking at its floor (one entity_events row per change: the
outbox) and of its consumers, measured in one run.

    python benchmarks/bench_tracking.py [--rows 100000] [--single 2000] [--blocks 10] [--repeat 3]
                                        [--consumer-events 300000] [--lag-rate 5000] [--lag-seconds 10]
                                        [--quick] [--json] [--database-url URL]

Figures (medians over --repeat rounds; configurations alternate within each round):
- bulk UPDATE of every entity's status: no triggers (baseline), the updated_at trigger
  only, the updated_at trigger plus a do-nothing statement trigger holding both transition
  tables (what capturing the changed rows costs), full tracking; the floor of the rows this
  design writes: the UPDATE as the table does it without tracking (updated_at trigger on)
  plus the INSERT of the same event rows on their own (same ids, same compact state, same
  partitioned table and indexes), that floor with the capture, and what each index kept on
  entity_events costs (the floor INSERT without it, rolled back); each round's own ratios
  are shown too (min-max), with how much the machine's speed moves by itself;
- single-row UPDATE throughput, autocommit and in an application transaction, in --blocks
  blocks alternating between: no triggers, updated_at only, updated_at plus a probe row
  trigger writing one narrow row (what any design writing a row per change pays), full
  tracking; and right after a tracked bulk UPDATE on the same connection;
- consumers: --consumer-events committed changes, then two workers of one consumer (they
  take turns: a consumer is handled by one worker at a time, the other waits as its
  standby) and, for comparison, two consumers with a worker each; events per second read,
  handled (no-op handler) and acknowledged (the consumer's position committed);
- end-to-end lag at --lag-rate changes per second (transactions of 10 rows, paced) for
  --lag-seconds: from each change's write (its id carries the statement's clock, to the
  microsecond) to the commit of the batch that handled it, one worker with the default
  options; p50, p99 and max.

The run ends with one JSON line: bulk_ratio, floor_ratio, single_ratio,
consumer_events_per_s, lag_p99_s (with --json, every figure in that line). --quick makes a
smoke-sized run (under a minute on 2 cores). The acting user is set
(app.current_user_id), as an application would. The server comes from
trackschema.provision (a private local cluster unless --database-url names one); a fresh
database is created and dropped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_queue, run as a script or loaded by a test

import bench_queue

from trackschema.runtime import scratch
from trackschema.runtime.provision import provision
from trackschema.runtime.settings import Settings
from trackschema.tracking import queue

ACTOR = "01a200a0-e0d9-7d4b-9f7f-311ec94e1991"

# The rows tracking writes for an UPDATE of every entity's status, written without a
# trigger: same id layout (statement clock, sequence), same compact state, same xid: the
# floor of this design's writes.
FLOOR_INSERTS = """
INSERT INTO entity_events (id, entity_id, entity_type_id, action, performed_by, previous_state, new_state, changed_columns,
                           table_name, occurred_at, xid)
SELECT (p.prefix || to_hex(nextval('entity_tracking_id_seq') | (-9223372036854775808)::int8))::uuid, e.id, e.entity_type_id,
       'UPDATE', %(actor)s, '{"status": "a"}', '{"status": "b"}', '{status}', 'entities', now(), pg_current_xact_id()
  FROM entities e,
       (SELECT lpad(to_hex(us / 1000), 12, '0') || '7' || lpad(to_hex((us %% 1000) * 4096 / 1000), 3, '0') AS prefix
          FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us) c) p
"""

# The same rows written by ONE statement without a trigger: the UPDATE (its updated_at
# trigger on) feeding the event INSERT through a writable CTE. A design that writes the
# event in the statement that made the change also has to capture the changed rows there
# (this CTE's RETURNING, tracking's transition tables); this floor includes that.
FLOOR_ONE_STATEMENT = "WITH e AS (UPDATE entities SET status = %(value)s RETURNING id, entity_type_id)" + FLOOR_INSERTS.replace(
    "FROM entities e,", "FROM e,")

# What each index kept on entity_events costs: the floor without it (dropped in the
# transaction that is rolled back).
INDEX_VARIANTS = {
    "floor_without_xid_index": ("idx_entity_events_xid",),
    "floor_without_entity_index": ("idx_entity_events_entity_time",),
    "floor_pk_only": ("idx_entity_events_xid", "idx_entity_events_entity_time"),
}

# The floor of any tracking design for a one-row statement: a row trigger that writes a
# single narrow row (no state, one index) and nothing else. And what capturing the changed
# rows costs: a statement trigger with both transition tables that does nothing (PostgreSQL
# fills them for any trigger that declares them). Installed in the benchmark's own
# database only, enabled only in the 'probe' and 'capture' configurations.
PROBE = """
CREATE TABLE bench_probe_outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, entity_id uuid NOT NULL);
CREATE FUNCTION bench_probe_one_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_probe_outbox (entity_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER bench_probe AFTER UPDATE ON entities FOR EACH ROW EXECUTE FUNCTION bench_probe_one_insert();
CREATE FUNCTION bench_capture_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;
CREATE TRIGGER bench_capture AFTER UPDATE ON entities REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_capture_only();
"""
TRACKING_TRIGGERS = ("track_insert", "track_update", "track_delete")


def machine_speed_spread(seconds: float = 3.0, unit: int = 60_000) -> float:
    """How much this machine's speed moves on its own: a fixed loop of Python arithmetic
    timed over and over for `seconds`, the 90th percentile of its times over the 10th.
    1.0 is a steady machine; on a shared virtual machine whose cores change speed every
    second or so (measured here: 1.1-1.9x), single timings of one-second statements scatter
    as much, which is why the bulk figures are medians and their rounds' spread is shown."""
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        total = 0
        for i in range(unit):
            total += i * i
        times.append(time.perf_counter() - started)
    times.sort()
    return times[int(len(times) * 0.9)] / times[int(len(times) * 0.1)]


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _triggers(conn: psycopg.Connection, mode: str) -> None:
    """mode: 'none' (every user trigger off), 'updated_at' (only update_updated_at on),
    'probe' (update_updated_at and the one-insert probe), 'capture' (update_updated_at and the
    do-nothing trigger with transition tables), 'all' (update_updated_at and tracking)."""
    conn.execute("ALTER TABLE entities DISABLE TRIGGER USER")
    enabled = {"none": (), "updated_at": ("update_updated_at",), "probe": ("update_updated_at", "bench_probe"),
               "capture": ("update_updated_at", "bench_capture"),
               "all": ("update_updated_at", *TRACKING_TRIGGERS)}[mode]
    for trigger in enabled:
        conn.execute(sql.SQL("ALTER TABLE entities ENABLE TRIGGER {}").format(sql.Identifier(trigger)))


def bulk_round(conn: psycopg.Connection, counter: itertools.count, reverse: bool = False) -> dict[str, float]:
    """One of each bulk figure; `reverse` runs them in the opposite order (rounds alternate,
    so a drift in the machine's load falls on all of them). Tables are vacuumed before each
    statement: the rolled-back floor INSERTs leave dead rows in entity_events."""
    times: dict[str, float] = {}

    def update(mode: str) -> None:
        _triggers(conn, mode)
        conn.execute("VACUUM entities, entity_events")
        value = f"S{next(counter)}"
        times[mode] = _timed(lambda: conn.execute("UPDATE entities SET status = %s", (value,)))

    def floor(name: str, dropped: tuple[str, ...]) -> None:
        conn.execute("VACUUM entity_events")
        with conn.transaction():
            for index in dropped:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
            conn.execute("SET LOCAL jit = off")  # as in the tracking functions
            times[name] = _timed(lambda: conn.execute(FLOOR_INSERTS, {"actor": ACTOR}))
            raise psycopg.Rollback()

    def floor_one_statement() -> None:
        _triggers(conn, "updated_at")
        conn.execute("VACUUM entities, entity_events")
        with conn.transaction():
            conn.execute("SET LOCAL jit = off")
            times["floor_one_statement"] = _timed(lambda: conn.execute(FLOOR_ONE_STATEMENT, {"actor": ACTOR, "value": f"F{next(counter)}"}))
            raise psycopg.Rollback()

    steps: list[Callable[[], None]] = [lambda m=m: update(m) for m in ("none", "updated_at", "capture", "all")]
    steps += [lambda n=n, d=d: floor(n, d) for n, d in {"floor": (), **INDEX_VARIANTS}.items()]
    steps.append(floor_one_statement)
    for step in reversed(steps) if reverse else steps:
        step()
    _triggers(conn, "all")
    return times


SINGLE_MODES = ("none", "updated_at", "probe", "all")


def single_round(conn: psycopg.Connection, ids: list[object], n: int, blocks: int, counter: itertools.count) -> dict[str, float]:
    """n single-row updates per configuration, in `blocks` blocks that alternate between
    the configurations of SINGLE_MODES (forward, then backward), so that load from other
    processes falls on all of them."""
    spent: dict[str, float] = {f"{kind}_{mode}": 0.0 for kind in ("autocommit", "transaction") for mode in SINGLE_MODES}
    per_block = max(1, n // blocks)
    for block in range(blocks):
        for mode in SINGLE_MODES if block % 2 == 0 else tuple(reversed(SINGLE_MODES)):
            _triggers(conn, mode)
            picks = [ids[(next(counter) * 7919) % len(ids)] for _ in range(per_block)]
            started = time.perf_counter()
            for eid in picks:
                conn.execute("UPDATE entities SET status = %s WHERE id = %s", (f"s{next(counter)}", eid))
            spent[f"autocommit_{mode}"] += time.perf_counter() - started
            started = time.perf_counter()
            for eid in picks:
                with conn.transaction():
                    conn.execute("SELECT set_config('app.current_user_id', %s, true)", (ACTOR,))
                    conn.execute("UPDATE entities SET status = %s WHERE id = %s", (f"t{next(counter)}", eid))
            spent[f"transaction_{mode}"] += time.perf_counter() - started
    _triggers(conn, "all")
    return {key: per_block * blocks / seconds for key, seconds in spent.items()}


def after_bulk_round(conn: psycopg.Connection, plain: psycopg.Connection, ids: list[object], n: int, blocks: int,
                     counter: itertools.count) -> dict[str, float]:
    """Single-row autocommit updates on a connection that has just run a tracked bulk
    UPDATE (rolled back), with no catalog change in between (ALTER TABLE ... TRIGGER, which
    single_round uses to switch, makes every session drop its cached plans). The baseline
    runs on a second connection with session_replication_role = replica, under which no
    user trigger fires; the two alternate in blocks (ABBA)."""
    with conn.transaction():
        conn.execute("UPDATE entities SET status = 'bulk'")
        raise psycopg.Rollback()
    spent = {"none": 0.0, "all": 0.0}
    per_block = max(1, n // blocks)
    for block in range(blocks):
        for mode, c in (("none", plain), ("all", conn)) if block % 2 == 0 else (("all", conn), ("none", plain)):
            picks = [ids[(next(counter) * 7919) % len(ids)] for _ in range(per_block)]
            started = time.perf_counter()
            for eid in picks:
                c.execute("UPDATE entities SET status = %s WHERE id = %s", (f"b{next(counter)}", eid))
            spent[mode] += time.perf_counter() - started
    return {f"after_bulk_{mode}": per_block * blocks / seconds for mode, seconds in spent.items()}


# --- consumers ---------------------------------------------------------------------------


def produce(conn: psycopg.Connection, events: int, rows: int, counter: itertools.count) -> int:
    """Commit `events` tracked changes: bulk UPDATEs of every entity, then of the first ones."""
    made = 0
    while made < events:
        n = min(rows, events - made)
        conn.execute("UPDATE entities SET status = %s WHERE id IN (SELECT id FROM entities ORDER BY id LIMIT %s)", (f"c{next(counter)}", n))
        made += n
    return made


def run_workers(settings: Settings, consumers: list[str], workers_each: int, expected: int) -> float:
    """bench_queue.run_workers with the default batch and the no-op handler: the time until
    every consumer has handled `expected` events (the workers of one consumer take turns)."""
    return bench_queue.run_workers(settings, consumers, workers_each, expected, queue.WorkerOptions().batch)


def write_time(event_id: Any) -> float:
    """When a change was written, from its id (install_entity_tracking v2): Unix
    milliseconds in the top 48 bits, the millisecond's fraction in the 12 bits after the version."""
    value = event_id.int
    return (value >> 80) / 1000 + ((value >> 64) & 0xFFF) / 4096 / 1000


def lag_run(settings: Settings, url: str, ids: list[object], rate: int, seconds: float, counter: itertools.count) -> dict[str, float]:
    """A writer commits `rate` changes per second (transactions of 10 rows, paced) for
    `seconds`; one worker with the default options handles them. Lag of each event: commit
    of its batch minus its write."""
    lags: list[float] = []
    pending: list[float] = []

    @queue.event_handler
    def note(conn: psycopg.Connection, events: list[queue.QueueEvent]) -> None:
        pending.extend(write_time(e.entity_event_id) for e in events)

    def committed(_result: queue.WorkResult) -> None:
        now = time.time()
        lags.extend(now - w for w in pending)
        pending.clear()

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT trackschema.consumer_register('bench_lag', NULL, 5)")
    stop = threading.Event()
    result: list[queue.WorkResult] = []
    worker = threading.Thread(target=lambda: result.append(queue.work(
        settings, options=queue.WorkerOptions(consumer="bench_lag", name="lag"), stop=stop, on_batch=committed, handler=note)))
    worker.start()
    per_tx, written = 10, 0
    interval = per_tx / rate
    with psycopg.connect(url, autocommit=True) as writer:
        writer.execute("SELECT set_config('app.current_user_id', %s, false)", (ACTOR,))
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            due = started + (written // per_tx) * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            picks = [ids[(next(counter) * 7919) % len(ids)] for _ in range(per_tx)]
            writer.execute("UPDATE entities SET status = %s WHERE id = ANY (%s)", (f"l{next(counter)}", picks))
            written += per_tx
        elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 120
    while len(lags) < written and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.05)
    stop.set()
    worker.join(120)
    if len(lags) < written:
        raise RuntimeError(f"the lag consumer handled {len(lags)} of {written} changes")
    ordered = sorted(lags)
    return {"lag_rate_achieved": written / elapsed, "lag_events": float(written),
            "lag_p50_s": ordered[len(ordered) // 2], "lag_p99_s": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "lag_max_s": ordered[-1]}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="entities updated by the bulk UPDATE")
    parser.add_argument("--single", type=int, default=2000, help="single-row updates per configuration and round")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks the single-row updates of a round are split into")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--consumer-events", type=int, default=300_000, help="committed changes the consumers handle")
    parser.add_argument("--lag-rate", type=int, default=5000, help="changes per second during the lag run")
    parser.add_argument("--lag-seconds", type=float, default=10.0, help="length of the lag run")
    parser.add_argument("--quick", action="store_true", help="a smoke-sized run (under a minute on 2 cores)")
    parser.add_argument("--database-url", help="a server to use instead of a private local cluster")
    parser.add_argument("--json", action="store_true", help="print every figure, as one JSON line")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.single, args.blocks, args.repeat = min(args.rows, 20_000), min(args.single, 600), min(args.blocks, 6), 1
        args.consumer_events, args.lag_seconds = min(args.consumer_events, 60_000), min(args.lag_seconds, 4.0)

    run_started = time.perf_counter()
    speed_spread = machine_speed_spread(1.0 if args.quick else 3.0)
    server = provision(args.database_url)
    name = f"bench_tracking_{os.getpid()}"
    try:
        url = scratch.create_database(server.url, name, upgrade_to="head")
        settings = Settings(database_url=url)
        with psycopg.connect(url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
            conn.execute(PROBE)
            _triggers(conn, "none")
            conn.execute(
                """INSERT INTO entities (entity_type_id, status, data)
                   SELECT (SELECT id FROM entity_types), 'ACTIVE', jsonb_build_object('n', g) FROM generate_series(1, %s) g""",
                (args.rows,),
            )
            _triggers(conn, "all")
            conn.execute("VACUUM ANALYZE")
            conn.execute("SELECT set_config('app.current_user_id', %s, false)", (ACTOR,))
            ids = [r[0] for r in conn.execute("SELECT id FROM entities ORDER BY random() LIMIT 5000")]
            counter = itertools.count()
            bulk = [bulk_round(conn, counter, reverse=r % 2 == 1) for r in range(args.repeat)]
            single = [single_round(conn, ids, args.single, args.blocks, counter) for _ in range(args.repeat)]
            with psycopg.connect(url, autocommit=True) as plain:
                plain.execute("SET session_replication_role = replica")
                after_bulk = [after_bulk_round(conn, plain, ids, args.single, args.blocks, counter) for _ in range(args.repeat)]
            tracked = conn.execute("SELECT count(*) FROM entity_events").fetchone()[0]  # type: ignore[index]

            # consumers: registered before the changes they are to get
            for consumer in ("bench_one", "bench_fan_a", "bench_fan_b"):
                conn.execute("SELECT trackschema.consumer_register(%s, 'trackschema.tracking.handlers:noop', 5)", (consumer,))
            produced = produce(conn, args.consumer_events, args.rows, counter)
            conn.execute("VACUUM ANALYZE entity_events")
        one_consumer_s = run_workers(settings, ["bench_one"], 2, produced)
        fan_out_s = run_workers(settings, ["bench_fan_a", "bench_fan_b"], 1, produced)
        lag = lag_run(settings, url, ids, args.lag_rate, args.lag_seconds, counter)
    finally:
        scratch.drop_database(server.url, name)
        server.stop()

    med = {k: statistics.median(r[k] for r in bulk) for k in bulk[0]}
    rate = {k: statistics.median(r[k] for r in single) for k in single[0]}
    rate.update({k: statistics.median(r[k] for r in after_bulk) for k in after_bulk[0]})
    floor_s = med["updated_at"] + med["floor"]
    # each round's own ratios: how far one round's figures scatter on this machine
    round_bulk = [r["all"] / r["none"] for r in bulk]
    round_floor = [r["all"] / (r["updated_at"] + r["floor"]) for r in bulk]
    round_one_statement = [r["floor_one_statement"] / r["none"] for r in bulk]
    figures: dict[str, float] = {
        "rows": float(args.rows),
        "bulk_no_triggers_s": med["none"],
        "bulk_updated_at_only_s": med["updated_at"],
        "bulk_tracked_s": med["all"],
        "bulk_event_inserts_s": med["floor"],
        "bulk_ratio": med["all"] / med["none"],
        "bulk_updated_at_only_ratio": med["updated_at"] / med["none"],
        "floor_ratio": med["all"] / floor_s,
        "floor_vs_no_triggers": floor_s / med["none"],
        "tracked_vs_no_triggers_plus_inserts": med["all"] / (med["none"] + med["floor"]),
        "bulk_ratio_round_min": min(round_bulk),
        "bulk_ratio_round_max": max(round_bulk),
        "floor_ratio_round_min": min(round_floor),
        "floor_ratio_round_max": max(round_floor),
        "floor_one_statement_vs_no_triggers_round_min": min(round_one_statement),
        "floor_one_statement_vs_no_triggers_round_max": max(round_one_statement),
        "bulk_capture_s": med["capture"],
        "capture_vs_no_triggers": (med["capture"] - med["updated_at"]) / med["none"],
        "tracked_vs_floor_with_capture": med["all"] / (med["capture"] + med["floor"]),
        "floor_with_capture_vs_no_triggers": (med["capture"] + med["floor"]) / med["none"],
        "machine_speed_spread": speed_spread,
        "bulk_floor_one_statement_s": med["floor_one_statement"],
        "floor_one_statement_vs_no_triggers": med["floor_one_statement"] / med["none"],
        "tracked_vs_floor_one_statement": med["all"] / med["floor_one_statement"],
        **{f"bulk_{k}_s": med[k] for k in INDEX_VARIANTS},
        "xid_index_share_of_inserts": (med["floor"] - med["floor_without_xid_index"]) / med["floor"],
        "entity_index_share_of_inserts": (med["floor"] - med["floor_without_entity_index"]) / med["floor"],
        "single_autocommit_no_triggers_per_s": rate["autocommit_none"],
        "single_autocommit_tracked_per_s": rate["autocommit_all"],
        "single_ratio": rate["autocommit_all"] / rate["autocommit_none"],
        "single_autocommit_updated_at_only_ratio": rate["autocommit_updated_at"] / rate["autocommit_none"],
        "single_autocommit_probe_ratio": rate["autocommit_probe"] / rate["autocommit_none"],
        "single_transaction_ratio": rate["transaction_all"] / rate["transaction_none"],
        "single_transaction_updated_at_only_ratio": rate["transaction_updated_at"] / rate["transaction_none"],
        "single_transaction_probe_ratio": rate["transaction_probe"] / rate["transaction_none"],
        "single_after_bulk_ratio": rate["after_bulk_all"] / rate["after_bulk_none"],
        "events_written": float(tracked),
        "consumer_events": float(produced),
        "consumer_events_per_s": produced / one_consumer_s,
        "fan_out_events_per_s": 2 * produced / fan_out_s,
        **lag,
        "run_seconds": time.perf_counter() - run_started,
    }
    summary = {k: round(figures[k], 4) for k in ("bulk_ratio", "floor_ratio", "single_ratio", "consumer_events_per_s", "lag_p99_s")}
    if args.json:
        print(json.dumps({**summary, **{k: round(v, 6) for k, v in figures.items()}}))
        return figures
    print(f"bench_tracking: {args.rows:,} entities, PostgreSQL {version} ({server.kind}), medians of {args.repeat} rounds"
          f"{' (--quick)' if args.quick else ''}")
    print(f"bulk UPDATE of {args.rows:,} rows (time, ratio to no triggers):")
    print(f"  no triggers (baseline)                          {med['none']:8.3f} s   1.00x")
    print(f"  updated_at trigger only                         {med['updated_at']:8.3f} s   {figures['bulk_updated_at_only_ratio']:.2f}x")
    print(f"  tracked: one entity_events row per change       {med['all']:8.3f} s   {figures['bulk_ratio']:.2f}x   (goal <= 2.5x)")
    print(f"  floor: updated_at-only UPDATE + event INSERTs   {floor_s:8.3f} s   {figures['floor_vs_no_triggers']:.2f}x"
          f"   tracked / floor {figures['floor_ratio']:.2f}x (goal <= 1.15x)")
    print(f"    (tracked / (no-trigger UPDATE + INSERTs) {figures['tracked_vs_no_triggers_plus_inserts']:.2f}x: that floor leaves out"
          f" the updated_at trigger, which the table has with or without tracking)")
    print(f"  floor in one statement (UPDATE ... RETURNING feeding the INSERT, no trigger)"
          f" {med['floor_one_statement']:.3f} s   {figures['floor_one_statement_vs_no_triggers']:.2f}x"
          f"   tracked / it {figures['tracked_vs_floor_one_statement']:.2f}x")
    print("    (a design that writes the event in the statement that made the change captures the changed rows there too)")
    print(f"    one round's ratios scatter: tracked / no triggers {figures['bulk_ratio_round_min']:.2f}-"
          f"{figures['bulk_ratio_round_max']:.2f}x, tracked / floor {figures['floor_ratio_round_min']:.2f}-"
          f"{figures['floor_ratio_round_max']:.2f}x, one statement / no triggers "
          f"{figures['floor_one_statement_vs_no_triggers_round_min']:.2f}-{figures['floor_one_statement_vs_no_triggers_round_max']:.2f}x"
          f" (this machine's own speed moves {speed_spread:.2f}x: p90/p10 of a fixed loop)")
    print(f"  floor with capture: the UPDATE with a do-nothing trigger holding both transition tables + the INSERTs"
          f" {med['capture'] + med['floor']:.3f} s   {figures['floor_with_capture_vs_no_triggers']:.2f}x"
          f"   tracked / it {figures['tracked_vs_floor_with_capture']:.2f}x")
    print(f"    (capturing the changed rows in the transition tables costs {figures['capture_vs_no_triggers']:.2f}x the"
          f" no-trigger UPDATE; what is left is the trigger's own work: pairing, diff, ids)")
    print(f"  the event INSERTs alone                         {med['floor']:8.3f} s   {med['floor'] / med['none']:.2f}x; of them:")
    print(f"    the outbox index on xid                       {figures['xid_index_share_of_inserts']:8.0%}   "
          f"(INSERTs without it {med['floor_without_xid_index']:.3f} s)")
    print(f"    the entity history index                      {figures['entity_index_share_of_inserts']:8.0%}   "
          f"(INSERTs without it {med['floor_without_entity_index']:.3f} s; primary key only {med['floor_pk_only']:.3f} s)")
    per_round = max(1, args.single // args.blocks) * args.blocks
    print(f"single-row UPDATE throughput ({per_round:,} per configuration and round, in {args.blocks} alternating blocks):")
    print(f"  autocommit statement: {rate['autocommit_none']:8,.0f}/s without, {rate['autocommit_all']:8,.0f}/s tracked"
          f"   ratio {figures['single_ratio']:.2f}x (goal >= 0.6x)")
    print(f"  app transaction:      {rate['transaction_none']:8,.0f}/s without, {rate['transaction_all']:8,.0f}/s tracked"
          f"   ratio {figures['single_transaction_ratio']:.2f}x (BEGIN; set actor; UPDATE; COMMIT)")
    print("  floors, same rounds (ratio to no triggers, autocommit / app transaction):")
    print(f"    updated_at trigger only                  {figures['single_autocommit_updated_at_only_ratio']:.2f}x / "
          f"{figures['single_transaction_updated_at_only_ratio']:.2f}x")
    print(f"    + a row trigger writing ONE narrow row    {figures['single_autocommit_probe_ratio']:.2f}x / "
          f"{figures['single_transaction_probe_ratio']:.2f}x   (what any design writing a row per change can reach)")
    print(f"  after a bulk UPDATE:  {rate['after_bulk_none']:8,.0f}/s without, {rate['after_bulk_all']:8,.0f}/s tracked"
          f"   ratio {figures['single_after_bulk_ratio']:.2f}x (autocommit, same connection, no trigger switching)")
    print(f"consumers, {produced:,} committed changes, no-op handler (read + handled + position committed):")
    print(f"  one consumer, 2 workers (one at a time, the other its standby) {figures['consumer_events_per_s']:10,.0f} events/s (goal >= 50,000)")
    print(f"  two consumers, 1 worker each (every event to both)           {figures['fan_out_events_per_s']:10,.0f} events/s")
    print(f"end-to-end lag at {args.lag_rate:,} changes/s for {args.lag_seconds:g}s (achieved {lag['lag_rate_achieved']:,.0f}/s, "
          f"{lag['lag_events']:,.0f} changes): p50 {lag['lag_p50_s']:.3f}s, p99 {lag['lag_p99_s']:.3f}s (goal <= 1s), max {lag['lag_max_s']:.3f}s")
    print(f"run took {figures['run_seconds']:.0f}s")
    print(json.dumps(summary))
    return figures


if __name__ == "__main__":
    main()
