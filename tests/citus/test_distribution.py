"""Revision 0100_citus_distribution on a coordinator and two workers (docs/citus.md#layout):
every table where `LAYOUT_0100`, then `LAYOUT_0101`, declare it (`layout_0101.LAYOUT_HEAD`), head -> base -> head
giving the same schema with the rows kept, a tracked write and its outbox row on one shard,
and `partitions ensure/retire` through the coordinator on a distributed partitioned table
(retire: a plain DETACH, Citus refusing CONCURRENTLY; tests/citus/test_partitions_retire.py has more)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg
import pytest

from trackschema.citus.layout import by_table
from trackschema.citus.layout_0101 import LAYOUT_HEAD
from trackschema.migrations import runner
from trackschema.partitions import monthly
from trackschema.runtime.provision import CitusCluster
from trackschema.schema.catalog import snapshot_on
from trackschema.testing.databases import Database, citus_database

pytestmark = pytest.mark.xdist_group("citus")

DISTRIBUTION = """
SELECT p.logicalrelid::regclass::text, p.partmethod, column_to_column_name(p.logicalrelid, p.partkey), p.colocationid
  FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
 WHERE NOT c.relispartition
"""


def _qualified(name: str) -> str:
    return name if "." in name else f"public.{name}"


def _distribution(conn: psycopg.Connection) -> dict[str, tuple[str, str | None, int]]:
    return {_qualified(t): (m, col, g) for t, m, col, g in conn.execute(DISTRIBUTION).fetchall()}


def _assert_layout(conn: psycopg.Connection) -> None:
    """pg_dist_partition holds exactly the declaration: method, column, co-location group
    (one group per declared group, the same for its members); partitions follow their parent."""
    found = _distribution(conn)
    declared = {p.table: p for p in LAYOUT_HEAD if p.kind != "local"}
    assert set(found) == set(declared)
    for table, placement in declared.items():
        method, column, group = found[table]
        if placement.kind == "reference":
            assert (method, column) == ("n", None), table
        else:
            assert (method, column) == ("h", placement.column), table
            leader = placement.colocate_with or table
            assert group == found[leader][2], table
    leaders = [p.table for p in LAYOUT_HEAD if p.kind == "distributed" and p.colocate_with is None]
    assert len({found[t][2] for t in leaders}) == len(leaders)  # each group its own
    partitions = conn.execute("""SELECT i.inhparent::regclass::text, p.logicalrelid IS NOT NULL, p.colocationid
                                   FROM pg_inherits i LEFT JOIN pg_dist_partition p ON p.logicalrelid = i.inhrelid""").fetchall()
    for parent, distributed, group in partitions:
        if _qualified(parent) in declared:
            assert distributed and group == found[_qualified(parent)][2], parent
        else:
            assert not distributed, parent
    every = {f"{s}.{t}" for s, t in conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('public', 'trackschema') AND c.relkind IN ('r', 'p') AND NOT c.relispartition""").fetchall()}
    assert every == set(by_table(LAYOUT_HEAD)), "every table of the history is declared, and only those"


def _seed(conn: psycopg.Connection) -> dict[str, int]:
    """Rows in the distributed tables (and a tracked change on each tracked table)."""
    conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('seed-contact', 'Seed contact')")
    conn.execute("""INSERT INTO entities (entity_type_id, status)
                    SELECT t.id, 'active' FROM entity_types t, generate_series(1, 40) WHERE t.name = 'seed-contact'""")
    conn.execute("INSERT INTO contacts (id, first_name, email) SELECT id, 'n', 'x@example.org' FROM entities")
    conn.execute("INSERT INTO entity_touchpoints (entity_id, touchpoint_type, channel) SELECT id, 'call', 'phone' FROM entities")
    conn.execute("INSERT INTO activity_log (entity_id, action) SELECT id, 'viewed' FROM entities")
    return _counts(conn)


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("entity_types", "entities", "contacts", "entity_touchpoints", "entity_events", "activity_log")}


def test_the_whole_history_up_and_down_keeps_schema_rows_and_layout(trackschema_citus_cluster: CitusCluster) -> None:
    with citus_database(trackschema_citus_cluster, "trackschema_citus_cycle") as db:
        runner.upgrade(db.settings, "0090_tracking_outbox")
        with db.connect() as conn:
            counts = _seed(conn)  # statement triggers, local tables
        assert counts["entity_events"] == 120  # 40 entities, 40 contacts, 40 touchpoints: one event each

        runner.upgrade(db.settings, "head")  # distributes the rows
        with db.connect() as conn:
            _assert_layout(conn)
            assert _counts(conn) == counts
            first = snapshot_on(conn)
            conn.execute("UPDATE contacts SET first_name = 'm'")  # row triggers on the shards
            counts = _counts(conn)
            assert counts["entity_events"] == 160

        runner.downgrade(db.settings, "0090_tracking_outbox")  # undistributed, rows kept, statement triggers back
        with db.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_dist_partition").fetchone() == (0,)
            assert _counts(conn) == counts
            levels = set(conn.execute("SELECT t.tgtype & 1 FROM pg_trigger t WHERE t.tgname = 'track_insert'").fetchall())
            assert levels == {(0,)}  # FOR EACH STATEMENT again
            conn.execute("UPDATE contacts SET first_name = 'o'")
            assert _counts(conn)["entity_events"] == counts["entity_events"] + 40

        runner.downgrade(replace(db.settings, allow_data_loss=True), "base")
        runner.upgrade(db.settings, "head")
        with db.connect() as conn:
            _assert_layout(conn)
            assert snapshot_on(conn).objects == first.objects

            # partitions ensure (entity_events) and retire (activity_log)
            made = monthly.ensure_on(conn, 6, "public.entity_events")
            assert made, "months ahead made"
            shards = conn.execute("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = %s::regclass",
                                  (made[-1].partition,)).fetchone()
            assert shards == (1,)
            oldest = min((p for p in monthly.list_partitions(db.settings, "public.activity_log") if p.upper is not None
                          and not p.is_default), key=lambda p: p.upper)  # type: ignore[arg-type,return-value]
            # retire detaches plainly on Citus (which refuses CONCURRENTLY), then drops every shard
            conn.execute("INSERT INTO activity_log (entity_id, action, occurred_at) SELECT gen_random_uuid(), 'old', %s - interval '1 day'"
                         " FROM generate_series(1, 5)", (oldest.upper,))
            total = conn.execute("SELECT count(*) FROM activity_log").fetchone()[0]  # type: ignore[index]
            gone = conn.execute(f"SELECT count(*) FROM {oldest.partition}").fetchone()[0]  # type: ignore[index]
            shards = conn.execute("SELECT array_agg(shardid) FROM pg_dist_shard WHERE logicalrelid = %s::regclass",
                                  (oldest.partition,)).fetchone()[0]  # type: ignore[index]
            assert gone >= 5 and len(shards) == 32
            result = monthly.retire_on(conn, monthly.RetireOptions(before=oldest.upper, action="drop", table="public.activity_log"))
            assert [(p.partition, p.rows, p.done) for p in result.partitions] == [(oldest.partition, gone, True)]
            assert conn.execute("SELECT to_regclass(%s)", (oldest.partition,)).fetchone() == (None,)
            assert conn.execute("SELECT count(*) FROM pg_dist_shard WHERE shardid = ANY(%s)", (shards,)).fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM activity_log").fetchone() == (total - gone,)


def test_a_tracked_write_and_its_outbox_row_are_on_one_shard(trackschema_citus_cluster: CitusCluster, citus_head: Database) -> None:
    entity = uuid.uuid4()
    with citus_head.connect() as conn:
        type_id = conn.execute("INSERT INTO entity_types (name, display_name) VALUES (%s, %s) RETURNING id",
                               (f"t-{entity}", f"T {entity}")).fetchone()[0]  # type: ignore[index]
        conn.execute("SET citus.propagate_set_commands = 'local'")
        with conn.transaction():
            conn.execute("SET LOCAL app.current_user_id = '0190c0de-0000-7000-8000-0000000000aa'")
            conn.execute("INSERT INTO entities (id, entity_type_id, status) VALUES (%s, %s, 'active')", (entity, type_id))
            conn.execute("UPDATE entities SET status = 'archived' WHERE id = %s", (entity,))
        rows = conn.execute("SELECT action, performed_by::text, changed_columns FROM entity_events WHERE entity_id = %s ORDER BY id",
                            (entity,)).fetchall()
        assert rows == [("INSERT", "0190c0de-0000-7000-8000-0000000000aa", None),
                        ("UPDATE", "0190c0de-0000-7000-8000-0000000000aa", ["status"])]
        entity_shard = conn.execute(
            """SELECT s.shard_name, s.nodeport FROM citus_shards s
                WHERE s.table_name = 'entities'::regclass AND s.shardid = get_shard_id_for_distribution_column('entities', %s::uuid)""",
            (entity,)).fetchone()
        event_shards = conn.execute(  # the entity's shard of every monthly partition of entity_events
            """SELECT s.shard_name, s.nodeport FROM pg_inherits i JOIN citus_shards s ON s.table_name = i.inhrelid::regclass
                WHERE i.inhparent = 'entity_events'::regclass
                  AND s.shardid = get_shard_id_for_distribution_column(i.inhrelid::regclass, %s::uuid)""",
            (entity,)).fetchall()
    assert entity_shard is not None and event_shards
    assert {port for _, port in event_shards} == {entity_shard[1]}  # co-located: the same node
    node = next(name for name, n in trackschema_citus_cluster.nodes.items() if n.port == entity_shard[1])
    with psycopg.connect(trackschema_citus_cluster.node_url(node, citus_head.name), autocommit=True) as worker:
        assert worker.execute(f'SELECT count(*) FROM "{entity_shard[0]}" WHERE id = %s', (entity,)).fetchone() == (1,)
        hits = sum(worker.execute(f'SELECT count(*) FROM "{name}" WHERE entity_id = %s', (entity,)).fetchone()[0]  # type: ignore[index]
                   for name, _ in event_shards)
    assert hits == 2
