"""`partitions retire` on distributed partitioned tables (docs/citus.md#partitions): a plain
DETACH (Citus 13.2 refuses CONCURRENTLY) bounded by a lock_timeout that reaches the
workers, the partition archived with every row (it stays distributed, co-located with its
parent) or dropped with its shards, and the outbox consumers' safety check computed on the
shards (trackschema.partitions.consumers): a partition a consumer still needs is refused.

One Citus database at head for the module: retiring changes its schema, so it is not the
session's shared `citus_head`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest

from trackschema.migrations import runner
from trackschema.partitions import consumers, monthly
from trackschema.runtime.db import sqlstate
from trackschema.runtime.provision import CitusCluster
from trackschema.testing.databases import Database, citus_database

pytestmark = pytest.mark.xdist_group("citus")

CHECKSUM = "SELECT count(*), md5(coalesce(string_agg(id::text || action || occurred_at::text, ',' ORDER BY id), '')) FROM {}"


@pytest.fixture(scope="module")
def retire_db(trackschema_citus_cluster: CitusCluster) -> Iterator[Database]:
    with citus_database(trackschema_citus_cluster, "trackschema_citus_retire") as db:
        runner.upgrade(db.settings, "head")
        yield db


def _partition_of(conn: psycopg.Connection, parent: str, instant: datetime) -> monthly.PartitionInfo:
    """The partition of `parent` whose range holds `instant`."""
    return next(p for p in monthly.partitions_of(conn, parent, estimate=True)
                if not p.is_default and (p.lower is None or p.lower <= instant) and p.upper is not None and instant < p.upper)


def _colocation(conn: psycopg.Connection, table: str) -> int | None:
    row = conn.execute("SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = %s::regclass", (table,)).fetchone()
    return row[0] if row else None


def test_retire_archives_a_distributed_partition_with_every_row(retire_db: Database) -> None:
    with retire_db.connect() as conn:
        old = datetime.fromisoformat("2001-03-04T05:06:07+00:00")  # in the oldest (history) partition, whatever today is
        conn.execute("INSERT INTO activity_log (entity_id, action, occurred_at) "
                     "SELECT gen_random_uuid(), 'archived-' || g, %s + g * interval '1 second' FROM generate_series(1, 200) g", (old,))
        part = _partition_of(conn, "activity_log", old)
        assert part.upper is not None
        before = conn.execute(CHECKSUM.format(part.partition)).fetchone()
        total = conn.execute("SELECT count(*) FROM activity_log").fetchone()[0]  # type: ignore[index]
        assert before is not None and before[0] >= 200

        result = monthly.retire_on(conn, monthly.RetireOptions(before=part.upper, action="archive", table="public.activity_log"))

        archived = f"archive.{part.partition}"
        assert [(p.partition, p.rows, p.destination, p.done) for p in result.partitions] == [(part.partition, before[0], archived, True)]
        assert conn.execute(CHECKSUM.format(archived)).fetchone() == before  # every row, unchanged
        assert conn.execute("SELECT count(*) FROM activity_log").fetchone() == (total - before[0],)
        assert _colocation(conn, archived) == _colocation(conn, "activity_log")  # still distributed, co-located
        shards = conn.execute("SELECT count(*) FROM citus_shards WHERE table_name = %s::regclass", (archived,)).fetchone()
        assert shards == (32,)
        assert conn.execute("SELECT count(*) FROM pg_inherits WHERE inhrelid = %s::regclass", (archived,)).fetchone() == (0,)


def test_a_lock_held_on_a_worker_shard_times_out_and_nothing_changes(trackschema_citus_cluster: CitusCluster, retire_db: Database) -> None:
    """A transaction on a worker's shard (not through the coordinator) holds the detach: the
    session's lock_timeout reaches the workers, so retire fails after it instead of waiting."""
    with retire_db.connect() as conn:
        part = monthly.partitions_of(conn, "activity_log", estimate=True)[0]
        assert part.upper is not None
        shard, port = conn.execute("SELECT shard_name, nodeport FROM citus_shards WHERE table_name = %s::regclass ORDER BY shardid LIMIT 1",
                                   (part.partition,)).fetchone()  # type: ignore[misc]
        node = next(name for name, n in trackschema_citus_cluster.nodes.items() if n.port == port)
        with psycopg.connect(trackschema_citus_cluster.node_url(node, retire_db.name)) as worker:
            worker.execute(f'SELECT count(*) FROM "{shard}"')  # ACCESS SHARE until this transaction ends
            conn.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.Error) as failed:
                monthly.retire_on(conn, monthly.RetireOptions(before=part.upper, action="drop", table="public.activity_log"),
                                  retries=1, backoff=0.01)
            assert sqlstate(failed.value) == "55P03"
            assert f"while executing command on 127.0.0.1:{port}" in (failed.value.diag.context or "")
            worker.rollback()
        conn.execute("RESET lock_timeout")
        assert conn.execute("SELECT count(*) FROM pg_inherits WHERE inhrelid = %s::regclass", (part.partition,)).fetchone() == (1,)


def test_an_entity_events_partition_a_consumer_needs_is_refused(retire_db: Database) -> None:
    with retire_db.connect() as conn:
        consumer = f"c{uuid.uuid4().hex[:12]}"
        conn.execute("SELECT trackschema.consumer_register(%s)", (consumer,))
        type_id = conn.execute("INSERT INTO entity_types (name, display_name) VALUES (%s, 'R') RETURNING id", (consumer,)).fetchone()[0]  # type: ignore[index]
        ids = [r[0] for r in conn.execute("INSERT INTO entities (entity_type_id, status) SELECT %s, 'active' FROM generate_series(1, 12) "
                                          "RETURNING id", (type_id,)).fetchall()]
        # occurred_at is now() on the worker (each shard connection's own transaction start), so
        # the 12 events may straddle a month boundary: the newest one's partition, and all before it
        newest = conn.execute("SELECT max(occurred_at) FROM entity_events WHERE entity_id = ANY(%s)", (ids,)).fetchone()[0]  # type: ignore[index]
        part = _partition_of(conn, "entity_events", newest)
        assert part.upper is not None
        in_part = conn.execute(f"SELECT count(*) FROM {part.partition}").fetchone()[0]  # type: ignore[index]
        mine = conn.execute(f"SELECT count(*) FROM {part.partition} WHERE entity_id = ANY(%s)", (ids,)).fetchone()[0]  # type: ignore[index]
        assert mine >= 1
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="direct joins between distributed and local tables"):
            conn.execute("SELECT * FROM trackschema.consumer_partition_needs(%s::regclass)", (part.partition,))  # the released function

        needs = {c: (e, r) for c, e, r in consumers.partition_needs(conn, part.partition)}
        assert needs[consumer] == (mine, 0)  # written after its snapshot, on the workers: not handled
        assert needs["propagate"][0] == in_part  # registered by 0090, never run: every event of the partition
        event_id, entity = conn.execute(f"SELECT id, entity_id FROM {part.partition} WHERE entity_id = ANY(%s) LIMIT 1",
                                        (ids,)).fetchone()  # type: ignore[misc]
        conn.execute("INSERT INTO event_retries (event_type, entity_event_id, entity_id, consumer) VALUES ('t', %s, %s, %s)",
                     (event_id, entity, consumer))
        assert {c: (e, r) for c, e, r in consumers.partition_needs(conn, part.partition)}[consumer] == (mine, 1)

        options = monthly.RetireOptions(before=part.upper, action="archive", table="public.entity_events")
        with pytest.raises(monthly.PartitionError, match=f"consumer {consumer}: {mine} events not handled, 1 failed events open"):
            monthly.retire_on(conn, options)
        assert conn.execute("SELECT count(*) FROM pg_inherits WHERE inhrelid = %s::regclass", (part.partition,)).fetchone() == (1,)

        for name in ("propagate", consumer):  # consumers that are gone: nothing needs the partitions any more
            conn.execute("SELECT trackschema.consumer_unregister(%s)", (name,))
        assert consumers.partition_needs(conn, part.partition) == []
        retiring = monthly.retirement_plan(conn, part.upper, "public.entity_events")
        before = {p.partition: conn.execute(CHECKSUM.format(p.partition)).fetchone() for p in retiring}
        result = monthly.retire_on(conn, options)
        assert [p.partition for p in result.partitions] == list(before) and part.partition in before
        for name, checksum in before.items():
            assert conn.execute(CHECKSUM.format(f"archive.{name}")).fetchone() == checksum
        assert conn.execute("SELECT count(*) FROM entity_events WHERE entity_id = ANY(%s)", (ids,)).fetchone() == (0,)
        archived = sum(conn.execute(f"SELECT count(*) FROM archive.{name} WHERE entity_id = ANY(%s)", (ids,)).fetchone()[0]  # type: ignore[index]
                       for name in before)
        assert archived == 12
