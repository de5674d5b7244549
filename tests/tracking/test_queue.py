"""The event_queue worker: claims, leases, retries, the dead state, propagation, and a
worker killed mid-batch (two real worker processes, kill -9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import psycopg
import pytest

from tests.conftest import ROOT, make_settings, run_cli
from tests.queue_test_handlers import LEDGER, record
from trackschema.tracking import queue
from trackschema.errors import TrackschemaError
from trackschema.tracking.queue import WorkerOptions, WorkResult


def enqueue(conn: psycopg.Connection, n: int, *, event_type: str = "test.event", max_attempts: int = 5) -> list[int]:
    rows = conn.execute(
        """INSERT INTO event_queue (event_type, payload, max_attempts)
           SELECT %s, jsonb_build_object('n', g), %s FROM generate_series(1, %s) g RETURNING id""",
        (event_type, max_attempts, n),
    ).fetchall()
    return [r[0] for r in rows]


def ledger(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM queue_ledger").fetchone()
    assert row is not None
    return row


def test_worker_drains_the_queue_once(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    ids = enqueue(conn, 250)
    result = queue.work(make_settings(db_url), "tests.queue_test_handlers:record", WorkerOptions(batch=100, once=True, name="w1"))
    assert (result.batches, result.claimed, result.completed, result.failed, result.lost) == (3, 250, 250, 0, 0)
    assert ledger(conn) == (250, 250)
    assert sorted(r[0] for r in conn.execute("SELECT event_id FROM queue_ledger")) == ids
    assert conn.execute("SELECT count(*) FROM event_queue").fetchone()[0] == 0  # type: ignore[index]


def test_failing_handler_ends_dead_with_its_error_after_max_attempts(db_url: str, conn: psycopg.Connection) -> None:
    (event_id,) = enqueue(conn, 1, max_attempts=3)
    result = queue.work(make_settings(db_url), "tests.queue_test_handlers:always_fail", WorkerOptions(once=True, base_delay=0))
    assert (result.claimed, result.failed, result.dead, result.completed) == (3, 3, 1, 0)
    row = conn.execute("SELECT status, attempts, last_error, claim_token FROM event_queue WHERE id = %s", (event_id,)).fetchone()
    assert row == ("dead", 3, f"RuntimeError: downstream service refused event {event_id}", None)
    # a dead event is never claimed again
    assert queue.claim(conn, "w", 10, 30) == []
    stats = queue.stats_on(conn)
    assert stats.by_status == {"pending": 0, "processing": 0, "dead": 1}
    assert stats.recent_dead[0].last_error == row[2]


def test_failure_backs_off_exponentially(db_url: str, conn: psycopg.Connection) -> None:
    (event_id,) = enqueue(conn, 1)
    options = WorkerOptions(max_batches=1, base_delay=10, max_delay=3600)
    delays = []
    for _ in range(3):
        queue.work(make_settings(db_url), "tests.queue_test_handlers:always_fail", options)
        row = conn.execute(
            "SELECT status, extract(epoch FROM available_at - failed_at) FROM event_queue WHERE id = %s", (event_id,)
        ).fetchone()
        assert row is not None and row[0] == "pending"
        delays.append(float(row[1]))
        conn.execute("UPDATE event_queue SET available_at = now() WHERE id = %s", (event_id,))  # skip the wait
    # base * 2^(attempt-1), scaled by a jitter factor in [0.5, 1)
    assert 5 <= delays[0] < 10 and 10 <= delays[1] < 20 and 20 <= delays[2] < 40


def test_one_bad_event_does_not_hold_back_its_batch(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    ids = enqueue(conn, 5)
    conn.execute("""UPDATE event_queue SET payload = '{"bad": true}' WHERE id = %s""", (ids[2],))
    result = queue.work(make_settings(db_url), "tests.queue_test_handlers:fail_odd_payloads", WorkerOptions(batch=10, max_batches=1))
    assert (result.completed, result.failed, result.dead) == (4, 1, 0)
    assert sorted(r[0] for r in conn.execute("SELECT event_id FROM queue_ledger")) == [i for i in ids if i != ids[2]]
    row = conn.execute("SELECT id, status, attempts, last_error FROM event_queue").fetchone()
    assert row == (ids[2], "pending", 1, f"ValueError: bad payload in event {ids[2]}")


def _wait_for_lease_end(conn: psycopg.Connection, ids: list[int]) -> None:
    """Until the server's clock (what event_queue_claim compares the lease with) has
    passed the lease of every event in `ids`: a point observed, not a sleep."""
    _wait_for(conn, "SELECT now() >= max(available_at) FROM event_queue WHERE id = ANY (%s)", (ids,))


def test_expired_lease_is_claimed_again_and_the_slow_worker_commits_nothing(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    ids = enqueue(conn, 3)
    slow = queue.claim(conn, "slow", 10, visibility=0.2)
    assert [e.id for e in slow] == ids and {e.attempts for e in slow} == {1}
    assert queue.claim(conn, "other", 10, 30) == []  # leased: invisible to others
    _wait_for_lease_end(conn, ids)
    with psycopg.connect(db_url, autocommit=True) as other:
        taken = queue.claim(other, "other", 10, 30)
    assert [e.id for e in taken] == ids and {e.attempts for e in taken} == {2}
    assert taken[0].claim_token != slow[0].claim_token

    # the slow worker finishes late: its handler's writes are rolled back with the batch
    result = WorkResult(worker="slow", handler="record")
    queue.process_batch(conn, record, slow, WorkerOptions(), result)
    assert (result.completed, result.lost) == (0, 3)
    assert ledger(conn) == (0, 0)
    assert conn.execute("SELECT event_queue_complete(%s, %s)", (ids, slow[0].claim_token)).fetchone()[0] == 0  # type: ignore[index]
    # the new owner completes them
    result = WorkResult(worker="other", handler="record")
    queue.process_batch(conn, record, taken, WorkerOptions(), result)
    assert result.completed == 3 and ledger(conn) == (3, 3)


def test_lease_expired_on_the_last_attempt_makes_the_event_dead(conn: psycopg.Connection) -> None:
    (event_id,) = enqueue(conn, 1, max_attempts=1)
    assert len(queue.claim(conn, "crashy", 10, visibility=0.1)) == 1
    _wait_for_lease_end(conn, [event_id])
    assert queue.claim(conn, "next", 10, 30) == []
    status, error = conn.execute("SELECT status, last_error FROM event_queue WHERE id = %s", (event_id,)).fetchone()  # type: ignore[misc]
    assert status == "dead" and "lease expired on attempt 1 of 1: claimed by crashy" in error


def test_claim_rejects_bad_arguments(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="batch must be at least 1"):
        conn.execute("SELECT * FROM event_queue_claim('w', 0, interval '1s')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="visibility timeout must be positive"):
        conn.execute("SELECT * FROM event_queue_claim('w', 1, interval '0s')")


def test_status_and_max_attempts_are_checked(conn: psycopg.Connection) -> None:
    """The domains event_queue_status and event_queue_max_attempts hold the table's rules."""
    with pytest.raises(psycopg.errors.CheckViolation, match="event_queue_status_check"):
        conn.execute("INSERT INTO event_queue (event_type, status) VALUES ('x', 'done')")
    with pytest.raises(psycopg.errors.CheckViolation, match="event_queue_max_attempts_check"):
        conn.execute("INSERT INTO event_queue (event_type, max_attempts) VALUES ('x', 0)")
    (event_id,) = enqueue(conn, 1)
    with pytest.raises(psycopg.errors.CheckViolation, match="event_queue_status_check"):
        conn.execute("UPDATE event_queue SET status = 'Pending' WHERE id = %s", (event_id,))
    assert conn.execute("SELECT status, max_attempts FROM event_queue WHERE id = %s", (event_id,)).fetchone() == ("pending", 5)


DEADLINE = 90.0


def _worker(db_url: str, name: str, *extra: str, sleep: str = "0") -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TRACKSCHEMA_DATABASE_URL", "DATABASE_URL"}}
    env.update({"TRACKSCHEMA_DATABASE_URL": db_url, "LEDGER_SLEEP": sleep})
    return subprocess.Popen(
        [sys.executable, "-m", "trackschema", "queue", "work", "--handler", "tests.queue_test_handlers:record",
         "--name", name, "--json", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(conn: psycopg.Connection, query: str, params: tuple[object, ...], timeout: float = 90) -> object:
    """Poll until `query` gives a true first value (returned); the deadline is far beyond
    what any machine needs, and failing it names the query."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(query, params).fetchone()
        if row and row[0]:
            return row[0]
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for: {query}")


# An advisory lock key of this test's own.
HOLD = 0x74726BF2
# A test-side hook (no product change): once the victim worker has committed a batch,
# its next batch waits, after its ledger rows are written and before it commits, for the
# advisory lock HOLD that the test holds. The kill lands there, a point the test sees in
# pg_locks, whatever the speed of the machine.
HOLD_VICTIM = f"""
CREATE FUNCTION hold_victim_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = 'trackschema-queue-worker:victim'
       AND (SELECT count(*) FROM queue_ledger WHERE worker_pid = pg_backend_pid()) > (SELECT count(*) FROM written) THEN
        PERFORM pg_advisory_xact_lock({HOLD});
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER hold_victim_batch AFTER INSERT ON queue_ledger REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION hold_victim_batch();
"""


def test_two_workers_one_killed_mid_batch_every_event_processed_exactly_once(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(LEDGER)
    conn.execute(HOLD_VICTIM)
    total = 1000
    ids = enqueue(conn, total)
    options = ("--batch", "25", "--visibility", "3s", "--once")
    held = """SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE a.application_name = 'trackschema-queue-worker:victim'
                 AND l.locktype = 'advisory' AND l.objid = %s AND NOT l.granted"""
    conn.execute("SELECT pg_advisory_lock(%s)", (HOLD,))
    victim = _worker(db_url, "victim", *options)
    survivor = None
    try:
        # the victim has committed a batch and waits inside the next one, its ledger rows
        # written; its leased events are the batch in flight
        victim_backend = _wait_for(conn, held, (HOLD,))
        committed_by_victim = conn.execute("SELECT count(*) FROM queue_ledger WHERE worker_pid = %s", (victim_backend,)).fetchone()[0]  # type: ignore[index]
        stranded = [r[0] for r in conn.execute(
            "SELECT id FROM event_queue WHERE claimed_by = 'victim' AND status = 'processing' ORDER BY id"
        )]
        # both workers busy: the survivor has committed a batch while the victim holds its own
        survivor = _worker(db_url, "survivor", *options)
        survivor_pid = _wait_for(conn, "SELECT pid FROM pg_stat_activity WHERE application_name = 'trackschema-queue-worker:survivor'", ())
        _wait_for(conn, "SELECT count(*) > 0 FROM queue_ledger WHERE worker_pid = %s", (survivor_pid,))
        assert conn.execute(held, (HOLD,)).fetchone() == (victim_backend,)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=DEADLINE)
        # the killed worker's backend goes on only now, finds its client gone and rolls back
        conn.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
        survivor_out, survivor_err = survivor.communicate(timeout=120)
    finally:
        conn.execute("SELECT pg_advisory_unlock_all()")
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert victim.returncode == -signal.SIGKILL
    assert survivor is not None and survivor.returncode == 0, survivor_err
    assert json.loads(survivor_out)["completed"] > 0
    assert committed_by_victim > 0 and len(stranded) == 25, "the kill hit a leased batch, after a committed one"

    # The victim's open transaction died with it (its ledger rows with it); its events
    # come back when their lease runs out: the survivor may have taken them already,
    # otherwise a third worker does, once the server's clock has passed the lease.
    _wait_for(conn, "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'trackschema-queue-worker:victim'", ())
    _wait_for(conn, "SELECT now() >= coalesce(max(available_at), '-infinity') FROM event_queue", ())
    finisher = run_cli("queue", "work", "--handler", "tests.queue_test_handlers:record", "--once", "--json", "--name", "finisher",
                       env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert finisher.returncode == 0, finisher.stderr

    assert conn.execute("SELECT count(*) FROM event_queue").fetchone()[0] == 0  # type: ignore[index]
    assert ledger(conn) == (total, total)  # every event exactly once
    assert sorted(r[0] for r in conn.execute("SELECT event_id FROM queue_ledger")) == ids
    assert conn.execute("SELECT count(*) FROM queue_ledger WHERE worker_pid = %s", (victim_backend,)).fetchone() == (committed_by_victim,)
    second_tries = conn.execute("SELECT event_id, attempts FROM queue_ledger WHERE event_id = ANY (%s) ORDER BY event_id", (stranded,)).fetchall()
    assert second_tries == [(i, 2) for i in stranded]  # processed once, on the claim after the victim's


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
    assert conn.execute("SELECT count(*) FROM event_queue").fetchone()[0] == 6  # type: ignore[index]

    result = queue.work(make_settings(db_url), options=WorkerOptions(once=True))
    assert (result.completed, result.failed) == (6, 0)
    progress = conn.execute("SELECT goal_id, entity_id, progress, meta FROM goal_events ORDER BY progress").fetchall()
    assert progress == [(goal, eid, 40, {"target": 100}), (goal, eid, 100, {"target": 100})]
    achievements = conn.execute("SELECT achievement_type, criteria, source_event_id IS NOT NULL FROM entity_achievements ORDER BY 1").fetchall()
    assert achievements == [
        ("engaged", {"touchpoints": 3, "threshold": 3}, True),
        (f"goal_reached:{goal}", {"goal_id": str(goal), "target": 100, "progress": 100}, True),
    ]
    # the source event of each goal event is the entity change that carried it
    assert conn.execute(
        "SELECT count(*) FROM goal_events g JOIN entity_events e ON e.id = g.source_event_id WHERE e.table_name = 'entities'"
    ).fetchone()[0] == 2  # type: ignore[index]


def test_malformed_goal_data_ends_dead_with_a_clear_error(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
    conn.execute("""SELECT fn_create_entity('contact', '{"goal_id": "soon", "progress": 10}')""")
    conn.execute("UPDATE event_queue SET max_attempts = 2")
    result = queue.work(make_settings(db_url), options=WorkerOptions(once=True, base_delay=0))
    assert (result.completed, result.dead) == (1, 1)  # the contacts insert passes; the entities insert is refused
    status, event_type, error = conn.execute("SELECT status, event_type, last_error FROM event_queue").fetchone()  # type: ignore[misc]
    assert (status, event_type) == ("dead", "entities.insert")
    assert error.startswith("PropagationError: entity_events ") and "goal_id='soon'" in error
    assert conn.execute("SELECT count(*) FROM goal_events").fetchone()[0] == 0  # type: ignore[index]


# --- CLI --------------------------------------------------------------------------------


def test_queue_stats_cli(db_url: str, conn: psycopg.Connection) -> None:
    enqueue(conn, 3)
    dead = enqueue(conn, 1)
    aged_at = conn.execute(
        "UPDATE event_queue SET created_at = now() - interval '90 seconds', available_at = now() - interval '90 seconds' WHERE id <> %s RETURNING now()",
        (dead[0],),
    ).fetchone()[0]  # type: ignore[index]
    conn.execute("UPDATE event_queue SET status = 'dead', last_error = 'boom', failed_at = now() WHERE id = %s", (dead[0],))
    queue.claim(conn, "w", 1, 60)
    before = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    result = run_cli("queue", "stats", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    after = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["by_status"] == {"pending": 2, "processing": 1, "dead": 1}
    # 90 s old when aged, plus however long until the CLI read the server's clock (between
    # `before` and `after`): bounds from instants the test observed, not a guess at speed
    # (the value is rounded to the millisecond)
    oldest = data["oldest_pending_seconds"]
    assert 90 + (before - aged_at).total_seconds() - 0.001 <= oldest <= 90 + (after - aged_at).total_seconds() + 0.001, oldest
    assert data["ready"] == 2
    assert data["recent_dead"][0]["last_error"] == "boom"
    human = run_cli("queue", "stats", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert human.returncode == 0 and "processing" in human.stdout and "boom" in human.stdout


def test_queue_work_cli_errors_are_one_line(db_url: str) -> None:
    env = {"TRACKSCHEMA_DATABASE_URL": db_url}
    for args, message in (
        (("--handler", "tests.queue_test_handlers:missing"), "has no function 'missing'"),
        (("--visibility", "soon", "--once"), "bad --visibility 'soon'"),
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
    assert timedelta(seconds=WorkerOptions().visibility) == timedelta(seconds=30)
