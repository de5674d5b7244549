"""Adding a worker after the history is applied (docs/citus.md#adding-a-worker): a private
cluster of a coordinator and one worker at head with rows in the distributed tables, a
second worker started and added (`CitusCluster.add_worker`: CREATE DATABASE, CREATE
EXTENSION citus, citus_add_node), the tracking sequence made on it
(`distribute.worker_setup_sql`), then a rebalance. Checked: shards on both workers, every
row intact (counts and a checksum of every row), a tracked write on a moved shard lands its
event on its row's node.

The rebalance is `rebalance_table_shards(shard_transfer_mode => 'block_writes')` (COPY, writes
to a moving shard group wait; no logical replication). Measured on the 2-core machine, one
worker added to one: at 32 shards per table (31 shard groups to move) 41 s, against 221 s for
`citus_rebalance_start()` + `citus_rebalance_wait()` (logical replication, ~7 s a group); at
4 shards per table (7 groups) 5.7 s against 46-50 s (background or `force_logical`). The test
database is made with `citus.shard_count = 2` (one group of each co-location group moves:
2.8 s), so the whole test, cluster start and `upgrade head` included, takes ~14 s."""

from __future__ import annotations

import hashlib
import time

import psycopg
import pytest

from trackschema.citus import distribute
from trackschema.migrations import runner
from trackschema.runtime.provision import start_citus
from trackschema.runtime.settings import Settings

pytestmark = pytest.mark.xdist_group("citus")

TABLES = ("entities", "contacts", "entity_touchpoints", "entity_events", "activity_log")


def _fingerprint(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """Per distributed table: its rows and a sha256 of every row's text, in order."""
    result = {}
    for table in TABLES:
        rows = [r[0] for r in conn.execute(f"SELECT t::text FROM {table} t").fetchall()]
        result[table] = (len(rows), hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest())
    return result


def _workers_with_shards(conn: psycopg.Connection) -> dict[int, int]:
    rows = conn.execute("""SELECT s.nodeport, count(*) FROM citus_shards s JOIN pg_dist_partition p ON p.logicalrelid = s.table_name
                            WHERE p.partmethod = 'h' GROUP BY 1""").fetchall()
    return dict(rows)


def test_a_worker_added_after_head_gets_shards_from_a_rebalance_and_nothing_is_lost() -> None:
    started = time.monotonic()
    cluster = start_citus(1, fast=True)
    try:
        name = "trackschema_citus_rebalance"
        url = cluster.create_database(name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} SET citus.shard_count = 2")  # read by 0100: see the module docstring
        runner.upgrade(Settings.from_env(url), "head")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('rebalance', 'Rebalance')")
            conn.execute("""INSERT INTO entities (entity_type_id, status)
                            SELECT t.id, 'active' FROM entity_types t, generate_series(1, 60) WHERE t.name = 'rebalance'""")
            conn.execute("INSERT INTO contacts (id, first_name, email) SELECT id, 'n', 'x@example.org' FROM entities")
            conn.execute("INSERT INTO entity_touchpoints (entity_id, touchpoint_type, channel) SELECT id, 'call', 'phone' FROM entities")
            conn.execute("INSERT INTO activity_log (entity_id, action) SELECT id, 'viewed' FROM entities")
            before = _fingerprint(conn)
            assert before["entity_events"][0] == 180 and before["activity_log"][0] == 60
            assert list(_workers_with_shards(conn)) == [cluster.workers["worker1"].port]

        added = cluster.add_worker([name])
        new_port = cluster.workers[added].port
        with psycopg.connect(url, autocommit=True) as conn:
            assert list(_workers_with_shards(conn)) == [cluster.workers["worker1"].port]  # added: no shard moves by itself
            assert conn.execute("SELECT isactive, shouldhaveshards FROM pg_dist_node WHERE nodeport = %s", (new_port,)).fetchone() == (True, True)
            conn.execute(f"DO $$ BEGIN {distribute.worker_setup_sql()}; END $$")  # the tracking sequence on the new worker
            moving = time.monotonic()
            conn.execute("SELECT rebalance_table_shards(shard_transfer_mode => 'block_writes')")
            rebalance_s = time.monotonic() - moving

            placed = _workers_with_shards(conn)
            assert set(placed) == {cluster.workers["worker1"].port, new_port} and placed[new_port] > 0
            assert _fingerprint(conn) == before

            # a tracked write on a shard that moved: its event on the same node, from the new worker's sequence range
            moved = {r[0] for r in conn.execute("SELECT shardid FROM citus_shards WHERE table_name = 'entities'::regclass AND nodeport = %s",
                                                (new_port,)).fetchall()}
            entity = next(e for (e,) in conn.execute("SELECT id FROM entities ORDER BY id").fetchall()
                          if conn.execute("SELECT get_shard_id_for_distribution_column('entities', %s::uuid)", (e,)).fetchone()[0] in moved)  # type: ignore[index]
            conn.execute("UPDATE contacts SET first_name = 'moved' WHERE id = %s", (entity,))
            event = conn.execute("SELECT id, changed_columns FROM entity_events WHERE entity_id = %s AND action = 'UPDATE'",
                                 (entity,)).fetchone()
            assert event is not None and event[1] == ["first_name"]
            shards = conn.execute(  # the entity's shard of every partition of entity_events: all on the new worker
                """SELECT s.shard_name, s.nodeport FROM pg_inherits i JOIN citus_shards s ON s.table_name = i.inhrelid::regclass
                    WHERE i.inhparent = 'entity_events'::regclass
                      AND s.shardid = get_shard_id_for_distribution_column(i.inhrelid::regclass, %s::uuid)""", (entity,)).fetchall()
            assert shards and {port for _, port in shards} == {new_port}
        with psycopg.connect(cluster.node_url(added, name), autocommit=True) as worker:
            hits = sum(worker.execute(f'SELECT count(*) FROM "{shard}" WHERE id = %s', (event[0],)).fetchone()[0]  # type: ignore[index]
                       for shard, _ in shards)
            assert hits == 1
        print(f"rebalance {rebalance_s:.1f} s, whole test {time.monotonic() - started:.1f} s")
    finally:
        cluster.destroy()
