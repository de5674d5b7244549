"""Consumers of the entity_events outbox, on a real database at head: snapshot windows (the
late-committing transaction), batches committed with their position, failures (backoff,
dead, an entity's events kept in order), one worker per consumer, a worker killed with
kill -9 mid-batch, status and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import psycopg
import pytest

from tests.conftest import ROOT, make_settings, run_cli
from tests.observe import wait_until
from tests.tracking.consumer_handlers import LEDGER, record
from trackschema.errors import TrackschemaError
from trackschema.tracking import queue
from trackschema.tracking.queue import WorkerOptions

RECORD = "tests.tracking.consumer_handlers:record"
REFUSE_POISON = "tests.tracking.consumer_handlers:refuse_poison"
ALWAYS_FAIL = "tests.tracking.consumer_handlers:always_fail"


def register(conn: psycopg.Connection, name: str, handler: str = RECORD, max_attempts: int = 5) -> None:
    """A consumer starts at the current snapshot: register it before the changes it is to get."""
    conn.execute("SELECT trackschema.consumer_register(%s, %s, %s)", (name, handler, max_attempts))


def entity_type(conn: psycopg.Connection) -> uuid.UUID:
    row = conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact') RETURNING id").fetchone()
    assert row is not None
    return row[0]


def new_entities(conn: psycopg.Connection, type_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    """n entities in one statement: n INSERT events of one transaction."""
    rows = conn.execute(
        "INSERT INTO entities (entity_type_id, data) SELECT %s, jsonb_build_object('n', g) FROM generate_series(1, %s) g RETURNING id",
        (type_id, n),
    ).fetchall()
    return [r[0] for r in rows]


def ledger(conn: psycopg.Connection) -> list[uuid.UUID]:
    return [r[0] for r in conn.execute("SELECT event_id FROM consumer_ledger ORDER BY seq")]


def event_ids(conn: psycopg.Connection) -> list[uuid.UUID]:
    return [r[0] for r in conn.execute("SELECT id FROM entity_events ORDER BY id")]


def work(db_url: str, consumer: str, handler: str = RECORD, **options: object) -> queue.WorkResult:
    return queue.work(make_settings(db_url), handler, WorkerOptions(consumer=consumer, handler=handler, once=True, **options))  # type: ignore[arg-type]


def test_every_change_is_handled_once_in_write_order_in_batches(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    register(conn, "books")
    type_id = entity_type(conn)
    ids = new_entities(conn, type_id, 200)
    for eid in ids[:30]:  # one event per statement, another 30 transactions
        conn.execute("UPDATE entities SET status = 'SEEN' WHERE id = %s", (eid,))
    result = work(db_url, "books", batch=64)
    assert (result.completed, result.failed, result.lost, result.batches) == (230, 0, 0, 4)
    assert ledger(conn) == event_ids(conn)  # every event once, in id (write) order
    assert work(db_url, "books").completed == 0  # nothing twice
    (status,) = [c for c in queue.consumers_on(conn) if c.name == "books"]
    assert (status.lag_events, status.lag_seconds, status.handled, status.window_open) == (0, 0.0, 230, False)
    # the rows of a change: its event only (the failures table stays empty)
    assert conn.execute("SELECT count(*) FROM event_retries").fetchone() == (0,)


def test_the_late_committing_transaction_is_never_skipped(db_url: str, conn: psycopg.Connection) -> None:
    """Two sessions: the older transaction writes first and commits last. A cursor on the
    event id would have moved past its event by then; the snapshot window takes it."""
    conn.execute(LEDGER)
    register(conn, "late")
    first, second = new_entities(conn, entity_type(conn), 2)
    with psycopg.connect(db_url) as older, psycopg.connect(db_url) as younger:
        older.execute("UPDATE entities SET status = 'OLDER' WHERE id = %s", (first,))
        older_xid = older.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]  # type: ignore[index]
        younger.execute("UPDATE entities SET status = 'YOUNGER' WHERE id = %s", (second,))
        younger_xid = younger.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]  # type: ignore[index]
        younger.commit()
        assert work(db_url, "late").completed == 3  # the two inserts and the younger update
        older.commit()
    late, early = (conn.execute("SELECT id FROM entity_events WHERE action = 'UPDATE' AND entity_id = %s", (e,)).fetchone()[0]  # type: ignore[index]
                   for e in (first, second))
    assert older_xid < younger_xid and late < early  # written first, committed last
    assert ledger(conn)[-1] == early and late not in ledger(conn)
    assert work(db_url, "late").completed == 1
    assert ledger(conn)[-1] == late and sorted(ledger(conn)) == event_ids(conn)


def test_two_workers_of_one_consumer_never_handle_a_batch_at_the_same_time(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    register(conn, "pair")
    new_entities(conn, entity_type(conn), 10)
    # the protocol: the batch's row lock is taken before the handler runs
    with psycopg.connect(db_url) as a, psycopg.connect(db_url) as b:
        window_no, position = a.execute("SELECT window_no, position FROM trackschema.consumer_next_window('pair')").fetchone()  # type: ignore[misc]
        a.commit()
        assert position is None
        assert a.execute("SELECT trackschema.consumer_lock('pair', %s, NULL)", (window_no,)).fetchone() == (0,)
        record(a, [queue.QueueEvent(e, "entities.insert", None, None) for e in event_ids(conn)])  # type: ignore[arg-type]
        b.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):  # b cannot enter the batch a is handling
            b.execute("SELECT trackschema.consumer_lock('pair', %s, NULL)", (window_no,))
        b.rollback()
        assert a.execute("SELECT trackschema.consumer_ack('pair', %s, %s, 10, true)", (window_no, max(event_ids(conn)))).fetchone() == (True,)
        a.commit()
        # once a committed, b finds the consumer moved on: the batch is not b's to handle
        assert b.execute("SELECT trackschema.consumer_lock('pair', %s, NULL)", (window_no,)).fetchone() == (None,)
    # two workers: one holds the consumer, the other waits as a standby
    new_entities(conn, entity_type_id(conn), 300)
    stop, results = threading.Event(), []

    def run(name: str) -> None:
        results.append(queue.work(make_settings(db_url), RECORD, WorkerOptions(consumer="pair", batch=50, idle_sleep=0.05, name=name), stop=stop))

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: conn.execute("SELECT count(*) FROM consumer_ledger").fetchone() == (310,), "310 events handled")
    stop.set()
    for t in threads:
        t.join(90)
    assert sorted(ledger(conn)) == event_ids(conn)  # each once
    assert sorted(r.completed for r in results) == [0, 300] and max(r.standby_seconds for r in results) > 0
    assert conn.execute("SELECT count(DISTINCT worker_pid) FROM consumer_ledger WHERE seq > 10").fetchone() == (1,)


def entity_type_id(conn: psycopg.Connection) -> uuid.UUID:
    return conn.execute("SELECT id FROM entity_types LIMIT 1").fetchone()[0]  # type: ignore[index]


def test_a_poison_event_goes_dead_after_its_retries_while_the_others_flow(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    register(conn, "picky", REFUSE_POISON, max_attempts=3)
    ids = new_entities(conn, entity_type(conn), 20)
    poisoned, other = ids[3], ids[7]
    conn.execute("""UPDATE entities SET data = '{"poison": true}' WHERE id = %s""", (poisoned,))
    conn.execute("""UPDATE entities SET data = '{"poison": false}' WHERE id = %s""", (poisoned,))  # the same entity, later
    conn.execute("UPDATE entities SET status = 'LATER' WHERE id = %s", (other,))
    bad, after = (r[0] for r in conn.execute("SELECT id FROM entity_events WHERE entity_id = %s AND action = 'UPDATE' ORDER BY id", (poisoned,)))

    result = work(db_url, "picky", REFUSE_POISON, base_delay=0)
    assert (result.completed, result.failed, result.dead, result.parked) == (22, 3, 1, 1)
    status, attempts, error, failed_at = conn.execute(
        "SELECT status, attempts, last_error, failed_at FROM event_retries WHERE consumer = 'picky' AND entity_event_id = %s", (bad,)
    ).fetchone()  # type: ignore[misc]
    assert (status, attempts, error) == ("dead", 3, f"ValueError: poison event {bad}")
    assert conn.execute("SELECT count(*) FROM event_retries WHERE consumer = 'picky'").fetchone() == (1,)  # only the dead one stays
    handled = dict(conn.execute("SELECT event_id, handled_at FROM consumer_ledger").fetchall())
    assert set(handled) == set(event_ids(conn)) - {bad}
    # the others flowed at once; the poisoned entity's next event waited until the poison was dead
    assert max(t for e, t in handled.items() if e != after) < failed_at <= handled[after]
    stats = queue.stats_on(conn)
    assert stats.by_status["dead"] == 1 and stats.recent_dead[0].last_error == error and stats.recent_dead[0].consumer == "picky"


def test_a_failure_backs_off_exponentially(db_url: str, conn: psycopg.Connection) -> None:
    register(conn, "flaky", ALWAYS_FAIL)
    new_entities(conn, entity_type(conn), 1)
    delays = []
    for _ in range(3):
        work(db_url, "flaky", ALWAYS_FAIL, base_delay=10, max_batches=1)
        status, delay = conn.execute(
            "SELECT status, extract(epoch FROM available_at - failed_at) FROM event_retries WHERE consumer = 'flaky'"
        ).fetchone()  # type: ignore[misc]
        assert status == "pending"
        delays.append(float(delay))
        conn.execute("UPDATE event_retries SET available_at = now() WHERE consumer = 'flaky'")  # skip the wait
    # base * 2^(attempt-1), scaled by a jitter factor in [0.5, 1)
    assert 5 <= delays[0] < 10 and 10 <= delays[1] < 20 and 20 <= delays[2] < 40


def test_a_failed_event_whose_worker_died_on_its_last_attempt_is_dead(db_url: str, conn: psycopg.Connection) -> None:
    register(conn, "crashy", max_attempts=2)
    (eid,) = new_entities(conn, entity_type(conn), 1)
    event = conn.execute("SELECT id FROM entity_events WHERE entity_id = %s", (eid,)).fetchone()[0]  # type: ignore[index]
    conn.execute("SELECT trackschema.consumer_retry_add('crashy', %s, 'boom', '0s', '0s')", ([event],))  # attempt 1 failed
    with conn.transaction():
        claimed = conn.execute("SELECT attempts FROM trackschema.consumer_retry_claim('crashy', 'doomed', 10, '100ms')").fetchall()
    assert claimed == [(2,)]  # the worker dies here, its lease runs out
    wait_until(lambda: conn.execute("SELECT now() >= available_at FROM event_retries WHERE consumer = 'crashy'").fetchone() == (True,),
               "the lease has run out on the server's clock")
    assert conn.execute("SELECT * FROM trackschema.consumer_retry_claim('crashy', 'next', 10, '30s')").fetchall() == []
    status, error = conn.execute("SELECT status, last_error FROM event_retries WHERE consumer = 'crashy'").fetchone()  # type: ignore[misc]
    assert status == "dead" and error.startswith("lease expired on attempt 2 of 2: claimed by doomed")


# An advisory lock key of this test's own.
HOLD = 0x74726BF3
# A test-side hook: once the victim worker has committed a batch, its next batch waits,
# after its ledger rows are written and before it commits, for the advisory lock HOLD the
# test holds. The kill lands there, at a point the test sees in pg_locks.
HOLD_VICTIM = f"""
CREATE FUNCTION hold_victim_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = 'trackschema-queue-worker:victim'
       AND (SELECT count(*) FROM consumer_ledger WHERE worker_pid = pg_backend_pid()) > (SELECT count(*) FROM written) THEN
        PERFORM pg_advisory_xact_lock({HOLD});
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER hold_victim_batch AFTER INSERT ON consumer_ledger REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION hold_victim_batch();
"""


def _worker(db_url: str, name: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TRACKSCHEMA_DATABASE_URL", "DATABASE_URL"}}
    env["TRACKSCHEMA_DATABASE_URL"] = db_url
    return subprocess.Popen(
        [sys.executable, "-m", "trackschema", "queue", "work", "--consumer", "ledger", "--handler", RECORD, "--batch", "25",
         "--idle-sleep", "50ms", "--name", name, "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_a_worker_killed_mid_batch_loses_nothing_and_its_standby_takes_over(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    conn.execute(HOLD_VICTIM)
    register(conn, "ledger")
    total = 1000
    new_entities(conn, entity_type(conn), total)
    held = """SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE a.application_name = 'trackschema-queue-worker:victim'
                 AND l.locktype = 'advisory' AND l.objid = %s AND NOT l.granted"""
    conn.execute("SELECT pg_advisory_lock(%s)", (HOLD,))
    victim, survivor = _worker(db_url, "victim"), None
    try:
        # the victim committed a batch and waits inside the next one, its ledger rows written
        wait_until(lambda: conn.execute(held, (HOLD,)).fetchone() is not None, "the victim held inside its second batch")
        victim_backend = conn.execute(held, (HOLD,)).fetchone()[0]  # type: ignore[index]
        survivor = _worker(db_url, "survivor")
        wait_until(lambda: conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'trackschema-queue-worker:survivor'"
                                        " AND state = 'idle'").fetchone() == (1,), "the survivor connected, waiting as a standby")
        assert conn.execute("SELECT worker_active FROM trackschema.consumer_status() WHERE name = 'ledger'").fetchone() == (True,)
        assert conn.execute("SELECT count(*), count(*) FILTER (WHERE worker_pid <> %s) FROM consumer_ledger", (victim_backend,)).fetchone() == (25, 0)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=90)
        # the killed worker's backend goes on only now, finds its client gone and rolls back;
        # its session lock goes with it and the standby takes the consumer over
        conn.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
        wait_until(lambda: conn.execute("SELECT count(DISTINCT event_id) FROM consumer_ledger").fetchone() == (total,), "every event handled")
        survivor.send_signal(signal.SIGTERM)
        out, err = survivor.communicate(timeout=90)
    finally:
        conn.execute("SELECT pg_advisory_unlock_all()")
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert victim.returncode == -signal.SIGKILL
    assert survivor.returncode == 0, err
    assert json.loads(out)["completed"] == total - 25 and json.loads(out)["standby_seconds"] > 0
    # every event handled, none twice: the killed batch's rows died with its transaction
    assert sorted(ledger(conn)) == event_ids(conn)
    assert conn.execute("SELECT count(*) FROM consumer_ledger WHERE worker_pid = %s", (victim_backend,)).fetchone() == (25,)
    assert conn.execute("SELECT lag_events, handled FROM trackschema.consumer_status() WHERE name = 'ledger'").fetchone() == (0, total)


# --- propagation ------------------------------------------------------------------------


def test_propagation_writes_goal_events_and_achievements_end_to_end(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
    goal = uuid.uuid4()
    eid = conn.execute(
        "SELECT fn_create_entity('contact', jsonb_build_object('first_name', 'Ada', 'goal_id', %s::text, 'progress', 40))", (goal,)
    ).fetchone()[0]  # type: ignore[index]
    conn.execute("SELECT fn_update_entity(%s, '{\"progress\": 100}')", (eid,))
    for kind in ("call", "email", "meeting"):
        conn.execute("INSERT INTO entity_touchpoints (entity_id, touchpoint_type) VALUES (%s, %s)", (eid, kind))
    assert conn.execute("SELECT count(*) FROM event_queue WHERE consumer = 'propagate'").fetchone() == (6,)

    result = queue.work(make_settings(db_url), options=WorkerOptions(once=True))  # the default consumer and handler
    assert (result.consumer, result.completed, result.failed) == ("propagate", 6, 0)
    progress = conn.execute("SELECT goal_id, entity_id, progress, meta FROM goal_events ORDER BY progress").fetchall()
    assert progress == [(goal, eid, 40, {"target": 100}), (goal, eid, 100, {"target": 100})]
    achievements = conn.execute("SELECT achievement_type, criteria, source_event_id IS NOT NULL FROM entity_achievements ORDER BY 1").fetchall()
    assert achievements == [
        ("engaged", {"touchpoints": 3, "threshold": 3}, True),
        (f"goal_reached:{goal}", {"goal_id": str(goal), "target": 100, "progress": 100}, True),
    ]
    assert conn.execute(
        "SELECT count(*) FROM goal_events g JOIN entity_events e ON e.id = g.source_event_id WHERE e.table_name = 'entities'"
    ).fetchone()[0] == 2  # type: ignore[index]
    assert conn.execute("SELECT count(*) FROM event_queue").fetchone() == (0,)


def test_malformed_goal_data_ends_dead_with_a_clear_error(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
    register(conn, "strict", queue.DEFAULT_HANDLER, max_attempts=2)
    conn.execute("""SELECT fn_create_entity('contact', '{"goal_id": "soon", "progress": 10}')""")
    result = work(db_url, "strict", queue.DEFAULT_HANDLER, base_delay=0)
    assert (result.completed, result.dead) == (1, 1)  # the contacts insert passes; the entities insert is refused
    status, event_type, error = conn.execute("SELECT status, event_type, last_error FROM event_retries WHERE consumer = 'strict'").fetchone()  # type: ignore[misc]
    assert (status, event_type) == ("dead", "entities.insert")
    assert error.startswith("PropagationError: entity_events ") and "goal_id='soon'" in error
    assert conn.execute("SELECT count(*) FROM goal_events").fetchone()[0] == 0  # type: ignore[index]


# --- status and CLI -----------------------------------------------------------------------


def test_queue_status_shows_each_consumers_lag_in_events_and_seconds(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    register(conn, "watch")
    new_entities(conn, entity_type(conn), 5)
    aged_at = conn.execute("UPDATE entity_events SET occurred_at = now() - interval '90 seconds' RETURNING now()").fetchone()[0]  # type: ignore[index]
    before = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    result = run_cli("queue", "status", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    after = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    consumers = {c["name"]: c for c in data["consumers"]}
    assert set(consumers) == {"propagate", "watch"}  # 'propagate' is registered by the revision
    watch = consumers["watch"]
    assert (watch["lag_events"], watch["handled"], watch["dead"], watch["worker_active"]) == (5, 0, 0, False)
    # 90 s old when aged, plus however long until the CLI read the server's clock
    assert 90 + (before - aged_at).total_seconds() - 0.001 <= watch["lag_seconds"] <= 90 + (after - aged_at).total_seconds() + 0.001
    assert data["by_status"] == {"pending": 10, "processing": 0, "dead": 0} and data["ready"] == 10
    work(db_url, "watch")
    again = json.loads(run_cli("queue", "stats", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url}).stdout)  # the old name
    assert {c["name"]: (c["lag_events"], c["lag_seconds"], c["handled"]) for c in again["consumers"]}["watch"] == (0, 0.0, 5)
    human = run_cli("queue", "status", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert human.returncode == 0 and "watch" in human.stdout and "propagate" in human.stdout


def test_unregister_forgets_a_consumer_and_needs_yes(db_url: str, conn: psycopg.Connection) -> None:
    register(conn, "gone")
    env = {"TRACKSCHEMA_DATABASE_URL": db_url}
    refused = run_cli("queue", "unregister", "gone", env=env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert run_cli("queue", "unregister", "gone", "--yes", env=env).returncode == 0
    assert conn.execute("SELECT count(*) FROM trackschema.consumers WHERE name = 'gone'").fetchone() == (0,)
    assert run_cli("queue", "unregister", "gone", "--yes", env=env).returncode == 1


def test_queue_work_cli_errors_are_one_line(db_url: str, conn: psycopg.Connection) -> None:
    env = {"TRACKSCHEMA_DATABASE_URL": db_url}
    for args, message in (
        (("--handler", "tests.tracking.consumer_handlers:missing"), "has no function 'missing'"),
        (("--visibility", "soon", "--once"), "bad --visibility 'soon'"),
        (("--consumer", "no spaces", "--once"), "bad --consumer 'no spaces'"),
        (("--handler", RECORD, "--once"), "consumer 'propagate' is handled by trackschema.tracking.handlers:propagate"),
    ):
        result = run_cli("queue", "work", *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [("no_colon", "write it as module:function"), ("no.such.module:fn", "cannot import handler module"), (":fn", "write it as")],
)
def test_load_handler_errors(spec: str, message: str) -> None:
    with pytest.raises(TrackschemaError, match=message):
        queue.load_handler(spec)


def test_worker_options_validate() -> None:
    with pytest.raises(TrackschemaError, match="bad --visibility '0': give a duration from 1s to 1d"):
        WorkerOptions(visibility=0)
    with pytest.raises(TrackschemaError, match="bad --batch '0': give a whole number from 1 to 100,000"):
        WorkerOptions(batch=0)
    with pytest.raises(TrackschemaError, match="bad --handler: handler 'os:system' is not declared"):
        WorkerOptions(handler="os:system")
    with pytest.raises(TrackschemaError, match="bad --consumer '-x'"):
        WorkerOptions(consumer="-x")
    assert timedelta(seconds=WorkerOptions().visibility) == timedelta(seconds=30) and WorkerOptions().consumer == "propagate"
