"""The outbox as a whole: entity_events partitions that consumers still need are not
retired; revision 0090 moves the event_queue over and its downgrade brings back what is
still to do."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest

from tests.conftest import make_settings, run_cli
from tests.partition_helpers import monthly_layout
from trackschema.errors import DataLossRefused
from trackschema.migrations import runner as migrate
from trackschema.partitions import monthly
from trackschema.tracking import queue

OUTBOX = "0090_tracking_outbox"


def partitions(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT partition::text FROM trackschema.partition_bounds('entity_events'::regclass) ORDER BY lower_bound NULLS FIRST")]


def test_a_partition_is_not_retired_while_a_consumer_still_needs_it(db_url: str, conn: psycopg.Connection) -> None:
    settings = make_settings(db_url)
    monthly_layout(conn, "entity_events", months_back=3)
    # an event dated in the month before last (a transaction that ran long, or a late
    # writer): the consumer 'propagate' has not handled it yet
    conn.execute(
        """INSERT INTO entity_events (entity_id, action, occurred_at)
           VALUES (gen_random_uuid(), 'UPDATE', date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '45 days')"""
    )
    start_of_last_month: datetime = conn.execute(
        "SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month') AT TIME ZONE 'UTC'"
    ).fetchone()[0]  # type: ignore[index]
    days = conn.execute("SELECT floor(extract(epoch FROM now() - %s) / 86400)::int", (start_of_last_month,)).fetchone()[0]  # type: ignore[index]
    before = partitions(conn)
    assert len(before) >= 4  # three months back, this one, the months ahead

    with pytest.raises(monthly.PartitionError, match=r"entity_events_p\d{4}_\d\d \(consumer propagate: 1 events not handled"):
        monthly.retire_on(conn, monthly.RetireOptions(before=start_of_last_month, action="drop"))
    job = monthly.MaintenanceOptions(older_than=days * 86400.0, action="drop", table="entity_events")
    with pytest.raises(monthly.PartitionError, match="consumers still need"):
        monthly.partition_maintenance(conn, job)
    cli = run_cli("partitions", "retire", "--before", start_of_last_month.isoformat(), "--drop", "--table", "entity_events",
                  env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert cli.returncode != 0 and "consumer propagate: 1 events not handled" in cli.stderr
    assert partitions(conn) == before  # nothing was detached

    # a consumer that is gone would hold the partition forever: unregister it
    conn.execute("SELECT trackschema.consumer_register('idle', NULL, 5)")
    conn.execute("INSERT INTO entity_events (entity_id, action, occurred_at) VALUES (gen_random_uuid(), 'UPDATE', %s - interval '20 days')",
                 (start_of_last_month,))
    assert queue.work(settings, options=queue.WorkerOptions(once=True)).completed == 2
    with pytest.raises(monthly.PartitionError, match=r"consumer idle: 1 events not handled") as refused:
        monthly.retire_on(conn, monthly.RetireOptions(before=start_of_last_month, action="drop"))
    assert "propagate" not in str(refused.value)
    assert queue.unregister(settings, "idle").existed
    retired = monthly.partition_maintenance(conn, job)["retired"]["partitions"]
    assert [p["partition"] for p in retired] == before[:2]
    assert partitions(conn) == before[2:]


def test_upgrade_moves_the_queue_over_and_downgrade_brings_back_what_is_to_do(empty_db_url: str) -> None:
    settings = make_settings(empty_db_url)
    previous = next(r.down_revision for r in migrate.history() if r.revision == OUTBOX)
    migrate.upgrade(settings, previous)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
        eids = [r[0] for r in conn.execute("INSERT INTO entities (entity_type_id) SELECT id FROM entity_types, generate_series(1, 3) RETURNING id")]
        # v1: three rows per change; make the queue hold every state a row can be in
        assert conn.execute("SELECT (SELECT count(*) FROM activity_log), (SELECT count(*) FROM event_queue)").fetchone() == (3, 3)
        dead = conn.execute("SELECT id FROM event_queue ORDER BY id OFFSET 2").fetchone()[0]  # type: ignore[index]
        conn.execute("SELECT event_queue_claim('w', 1, interval '1 hour')")  # leases the oldest
        conn.execute("UPDATE event_queue SET status = 'dead', attempts = 5, last_error = 'boom', failed_at = now() WHERE id = %s", (dead,))
        conn.execute("""INSERT INTO event_queue (event_type, payload) VALUES ('app.ping', '{"n": 1}')""")  # a row with no event
        columns = "id, event_type, payload, entity_event_id, status, attempts, max_attempts, available_at, claim_token, last_error"
        queued = conn.execute(f"SELECT {columns} FROM event_queue ORDER BY id").fetchall()
        assert [q[4] for q in queued] == ["processing", "pending", "dead", "pending"]

    migrate.upgrade(settings, OUTBOX)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        # every row is there, as the default consumer's, with its state, lease and error
        moved = conn.execute(f"SELECT {columns}, consumer FROM event_retries ORDER BY id").fetchall()
        assert moved == [(*q, "propagate") for q in queued]
        assert conn.execute("SELECT count(*) FROM event_retries WHERE entity_id IS NOT NULL").fetchone() == (3,)
        assert conn.execute(f"SELECT {columns} FROM event_queue ORDER BY id").fetchall() == queued  # the compatibility view
        # since the upgrade: one row per change, pending for the consumer
        conn.execute("UPDATE entities SET status = 'MOVED' WHERE id = ANY (%s)", (eids[:2],))
        assert conn.execute("SELECT (SELECT count(*) FROM activity_log), (SELECT count(*) FROM event_retries)").fetchone() == (3, 4)
        new_events = [r[0] for r in conn.execute("SELECT id FROM entity_events WHERE xid IS NOT NULL ORDER BY id")]
        assert len(new_events) == 2
        assert conn.execute("SELECT lag_events, dead FROM trackschema.consumer_status() WHERE name = 'propagate'").fetchone() == (2 + 3, 1)
        # another consumer with work to do makes the downgrade refuse, changing nothing
        conn.execute("SELECT trackschema.consumer_register('reports', NULL, 5)")
        conn.execute("UPDATE entities SET status = 'AGAIN' WHERE id = %s", (eids[2],))
        new_events.append(conn.execute("SELECT id FROM entity_events WHERE xid IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()[0])  # type: ignore[index]
    with pytest.raises(DataLossRefused, match="consumers other than propagate have events to handle"):
        migrate.downgrade(settings, previous)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("SELECT trackschema.consumer_unregister('reports')")

    migrate.downgrade(settings, previous)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        back = conn.execute(f"SELECT {columns} FROM event_queue ORDER BY id").fetchall()
        assert back[:4] == queued  # the moved rows, as they were
        # and the three changes made since the upgrade, pending, in write order
        assert [(b[3], b[4], b[5]) for b in back[4:]] == [(e, "pending", 0) for e in new_events]
        # each change has its activity_log row again, as v1 writes them
        assert conn.execute("SELECT count(*) FROM activity_log WHERE entity_event_id = ANY (%s)", (new_events,)).fetchone() == (3,)
        assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'entity_events'::regclass").fetchone() == ("r",)
        # v1 tracking again: three rows per change
        conn.execute("UPDATE entities SET status = 'BACK' WHERE id = %s", (eids[0],))
        assert conn.execute("SELECT (SELECT count(*) FROM activity_log), (SELECT count(*) FROM event_queue)").fetchone() == (7, 8)
    migrate.upgrade(settings, OUTBOX)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*), count(*) FILTER (WHERE status = 'dead') FROM event_retries").fetchone() == (8, 1)
