"""Cost of entity change tracking: a bulk UPDATE of entities and single-row updates, with
tracking (one entity_events, one activity_log and one event_queue row per changed row)
against the same statements with the triggers disabled, measured in one run.

    python benchmarks/bench_tracking.py [--rows 100000] [--single 2000] [--blocks 10] [--repeat 3] [--database-url URL]

Figures (medians over --repeat rounds; configurations alternate within each round):
- bulk UPDATE of every entity's status: no triggers (baseline), updated_at trigger only,
  full tracking; and, as a floor, the three set-based INSERTs tracking performs for that
  many rows run on their own (what no tracking design writing those rows can go below),
  also with every secondary index of the three tables dropped (primary keys only; rolled
  back);
- single-row UPDATE throughput, one autocommit statement per transaction, and an
  application transaction (BEGIN; set_config actor; UPDATE; COMMIT); each round's
  updates run in --blocks blocks alternating between four configurations (switched
  with ALTER TABLE ... DISABLE/ENABLE TRIGGER): no triggers, the updated_at trigger
  only, the updated_at trigger plus a probe row trigger that writes one narrow row (the
  floor of any design that writes a row per change), and full tracking;
- single-row autocommit UPDATE throughput right after a tracked bulk UPDATE on the same
  connection, with no ALTER TABLE in between (that makes every session drop its cached
  plans, so the figure above never sees plans a session kept from a big statement); the
  baseline is a second connection with session_replication_role = replica.

The acting user is set (app.current_user_id), as an application would. The server comes
from trackschema.provision (a private local cluster unless --database-url names one); a
fresh database is created and dropped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from trackschema.runtime import scratch
from trackschema.runtime.provision import provision

ACTOR = "01a200a0-e0d9-7d4b-9f7f-311ec94e1991"

# The rows tracking writes for an UPDATE of every entity (same ids, same compact state),
# without reading transition tables or comparing columns: the floor of any design.
FLOOR_INSERTS = """
WITH src AS MATERIALIZED (
    SELECT to_hex(nextval('entity_tracking_id_seq') | (-9223372036854775808)::int8) AS h, e.id AS entity_id, e.entity_type_id
      FROM entities e
), ev AS (
    INSERT INTO entity_events (id, entity_id, entity_type_id, action, performed_by, previous_state, new_state, changed_columns, table_name)
    SELECT (p.ms || '7000' || h)::uuid, entity_id, entity_type_id, 'UPDATE', %(actor)s, '{"status": "a"}', '{"status": "b"}', '{status}', 'entities'
      FROM src, (SELECT lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') AS ms) p
), activity AS (
    INSERT INTO activity_log (id, user_id, entity_id, entity_type, action, entity_event_id)
    SELECT (p.ms || '7001' || h)::uuid, %(actor)s, entity_id, 'entities', 'UPDATE', (p.ms || '7000' || h)::uuid
      FROM src, (SELECT lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') AS ms) p
)
INSERT INTO event_queue (event_type, entity_event_id)
SELECT 'entities.update', (p.ms || '7000' || h)::uuid
  FROM src, (SELECT lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') AS ms) p
"""


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# The indexes of the three tracking tables other than their primary keys (for a
# partitioned table, the parent's: dropping it drops the partitions' too).
SECONDARY_INDEXES = """
SELECT ARRAY[n.nspname::text, c.relname::text]
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE i.indrelid IN ('entity_events'::regclass, 'activity_log'::regclass, 'event_queue'::regclass) AND NOT i.indisprimary
"""

# The floor of any tracking design for a one-row statement: a row trigger that writes a
# single narrow row (no state, one index) and nothing else. Installed in the benchmark's
# own database only, enabled only in the 'probe' configuration.
PROBE = """
CREATE TABLE bench_probe_outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, entity_id uuid NOT NULL);
CREATE FUNCTION bench_probe_one_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_probe_outbox (entity_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER bench_probe AFTER UPDATE ON entities FOR EACH ROW EXECUTE FUNCTION bench_probe_one_insert();
"""
TRACKING_TRIGGERS = ("track_insert", "track_update", "track_delete")


def _triggers(conn: psycopg.Connection, mode: str) -> None:
    """mode: 'none' (every user trigger off), 'updated_at' (only update_updated_at on),
    'probe' (update_updated_at and the one-insert probe), 'all' (update_updated_at and tracking)."""
    conn.execute("ALTER TABLE entities DISABLE TRIGGER USER")
    enabled = {"none": (), "updated_at": ("update_updated_at",), "probe": ("update_updated_at", "bench_probe"),
               "all": ("update_updated_at", *TRACKING_TRIGGERS)}[mode]
    for trigger in enabled:
        conn.execute(sql.SQL("ALTER TABLE entities ENABLE TRIGGER {}").format(sql.Identifier(trigger)))


def bulk_round(conn: psycopg.Connection, counter: itertools.count) -> dict[str, float]:
    times: dict[str, float] = {}
    for mode in ("none", "updated_at", "all"):
        _triggers(conn, mode)
        conn.execute("VACUUM entities")
        value = f"S{next(counter)}"
        times[mode] = _timed(lambda: conn.execute("UPDATE entities SET status = %s", (value,)))
    _triggers(conn, "all")
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")  # as in the tracking functions
        times["floor"] = _timed(lambda: conn.execute(FLOOR_INSERTS, {"actor": ACTOR}))
        raise psycopg.Rollback()
    with conn.transaction():
        # the same inserts with only the primary keys left on the three tables
        for (index,) in conn.execute(SECONDARY_INDEXES).fetchall():
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(*index)))
        conn.execute("SET LOCAL jit = off")
        times["floor_pk_only"] = _timed(lambda: conn.execute(FLOOR_INSERTS, {"actor": ACTOR}))
        raise psycopg.Rollback()
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
    """Single-row autocommit updates on a connection that has just run a tracked 100k-row
    UPDATE (rolled back), as a long-lived application connection would, with no catalog
    change in between (ALTER TABLE ... TRIGGER, which single_round uses to switch, makes
    every session drop its cached plans). The baseline runs on a second connection with
    session_replication_role = replica, under which no user trigger fires; the two
    alternate in blocks (ABBA)."""
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


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="entities updated by the bulk UPDATE")
    parser.add_argument("--single", type=int, default=2000, help="single-row updates per configuration and round")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks the single-row updates of a round are split into")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--database-url", help="a server to use instead of a private local cluster")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    server = provision(args.database_url)
    name = f"bench_tracking_{os.getpid()}"
    try:
        url = scratch.create_database(server.url, name, upgrade_to="head")
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
            bulk = [bulk_round(conn, counter) for _ in range(args.repeat)]
            single = [single_round(conn, ids, args.single, args.blocks, counter) for _ in range(args.repeat)]
            with psycopg.connect(url, autocommit=True) as plain:
                plain.execute("SET session_replication_role = replica")
                after_bulk = [after_bulk_round(conn, plain, ids, args.single, args.blocks, counter) for _ in range(args.repeat)]
            tracked = conn.execute("SELECT count(*) FROM entity_events").fetchone()[0]  # type: ignore[index]
    finally:
        scratch.drop_database(server.url, name)
        server.stop()

    med = {k: statistics.median(r[k] for r in bulk) for k in bulk[0]}
    rate = {k: statistics.median(r[k] for r in single) for k in single[0]}
    rate.update({k: statistics.median(r[k] for r in after_bulk) for k in after_bulk[0]})
    figures = {
        "rows": float(args.rows),
        "bulk_no_triggers_s": med["none"],
        "bulk_updated_at_only_s": med["updated_at"],
        "bulk_tracked_s": med["all"],
        "bulk_floor_inserts_s": med["floor"],
        "bulk_tracked_vs_no_triggers": med["all"] / med["none"],
        "bulk_tracked_vs_updated_at_only": med["all"] / med["updated_at"],
        "bulk_floor_vs_no_triggers": (med["none"] + med["floor"]) / med["none"],
        "bulk_floor_pk_only_s": med["floor_pk_only"],
        "bulk_floor_pk_only_vs_no_triggers": (med["none"] + med["floor_pk_only"]) / med["none"],
        "single_autocommit_no_triggers_per_s": rate["autocommit_none"],
        "single_autocommit_tracked_per_s": rate["autocommit_all"],
        "single_autocommit_ratio": rate["autocommit_all"] / rate["autocommit_none"],
        "single_autocommit_updated_at_only_per_s": rate["autocommit_updated_at"],
        "single_autocommit_updated_at_only_ratio": rate["autocommit_updated_at"] / rate["autocommit_none"],
        "single_autocommit_probe_per_s": rate["autocommit_probe"],
        "single_autocommit_probe_ratio": rate["autocommit_probe"] / rate["autocommit_none"],
        "single_autocommit_tracked_vs_updated_at_only": rate["autocommit_all"] / rate["autocommit_updated_at"],
        "single_transaction_no_triggers_per_s": rate["transaction_none"],
        "single_transaction_tracked_per_s": rate["transaction_all"],
        "single_transaction_ratio": rate["transaction_all"] / rate["transaction_none"],
        "single_transaction_updated_at_only_ratio": rate["transaction_updated_at"] / rate["transaction_none"],
        "single_transaction_probe_ratio": rate["transaction_probe"] / rate["transaction_none"],
        "single_after_bulk_no_triggers_per_s": rate["after_bulk_none"],
        "single_after_bulk_tracked_per_s": rate["after_bulk_all"],
        "single_after_bulk_ratio": rate["after_bulk_all"] / rate["after_bulk_none"],
        "events_written": float(tracked),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return figures
    print(f"bench_tracking: {args.rows:,} entities, PostgreSQL {version} ({server.kind}), medians of {args.repeat} rounds")
    print(f"bulk UPDATE of {args.rows:,} rows (time, ratio to no triggers):")
    print(f"  no triggers (baseline)                       {med['none']:8.3f} s   1.00x")
    print(f"  updated_at trigger only                      {med['updated_at']:8.3f} s   {med['updated_at'] / med['none']:.2f}x")
    print(f"  tracking: event + activity + queue row each  {med['all']:8.3f} s   {figures['bulk_tracked_vs_no_triggers']:.2f}x"
          f"   ({figures['bulk_tracked_vs_updated_at_only']:.2f}x the updated_at-only run; goal <= 2.5x)")
    print(f"  floor: baseline + the three inserts alone    {med['none'] + med['floor']:8.3f} s   {figures['bulk_floor_vs_no_triggers']:.2f}x")
    print(f"    the same with primary keys only            {med['none'] + med['floor_pk_only']:8.3f} s   "
          f"{figures['bulk_floor_pk_only_vs_no_triggers']:.2f}x   (no secondary index on the three tables)")
    per_round = max(1, args.single // args.blocks) * args.blocks
    print(f"single-row UPDATE throughput ({per_round:,} per configuration and round, in {args.blocks} alternating blocks):")
    print(f"  autocommit statement: {rate['autocommit_none']:8,.0f}/s without, {rate['autocommit_all']:8,.0f}/s tracked"
          f"   ratio {figures['single_autocommit_ratio']:.2f}x (goal >= 0.9x)")
    print(f"  app transaction:      {rate['transaction_none']:8,.0f}/s without, {rate['transaction_all']:8,.0f}/s tracked"
          f"   ratio {figures['single_transaction_ratio']:.2f}x (BEGIN; set actor; UPDATE; COMMIT)")
    print("  floors, same rounds (ratio to no triggers, autocommit / app transaction):")
    print(f"    updated_at trigger only                  {figures['single_autocommit_updated_at_only_ratio']:.2f}x / "
          f"{figures['single_transaction_updated_at_only_ratio']:.2f}x")
    print(f"    + a row trigger writing ONE narrow row    {figures['single_autocommit_probe_ratio']:.2f}x / "
          f"{figures['single_transaction_probe_ratio']:.2f}x   (what any design writing a row per change can reach)")
    print(f"    tracking vs the updated_at-only table     {figures['single_autocommit_tracked_vs_updated_at_only']:.2f}x autocommit")
    print(f"  after a bulk UPDATE:  {rate['after_bulk_none']:8,.0f}/s without, {rate['after_bulk_all']:8,.0f}/s tracked"
          f"   ratio {figures['single_after_bulk_ratio']:.2f}x (autocommit, same connection, no trigger switching)")
    return figures


if __name__ == "__main__":
    main()
