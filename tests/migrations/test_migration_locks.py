"""Safe running: the migration advisory lock, lock_timeout with retries, bounded queueing.

A probe revision, written next to the test and chained onto the current head through an
extra version location, does what real revisions do: ALTER TABLE on a busy table.

No test here waits a fixed time for something to happen: a held lock is released once
the test has seen what it waits for (retries logged, a session queued in pg_locks, a
read that got through); time bounds are asserted only where the bound is the property
(lock_timeout, lock_wait), relative to the configured value with headroom.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, make_settings, run_cli
from tests.observe import wait_until, watcher
from trackschema.runtime import db
from trackschema.migrations import runner as migrate
from trackschema.errors import LockRetriesExhausted, MigrationLockBusy


# Polls of pg_locks: often, with a deadline far beyond what any machine needs.
POLL, DEADLINE = 0.02, 90.0
# An advisory lock key of the tests' own (not the migration lock's, 0x74726B01).
GATE = 0x74726BF1


def probe_revision(tmp_path: Path, *, gate: int | None = None) -> tuple[str, list[str]]:
    """A revision that adds a column to `entities` (needs ACCESS EXCLUSIVE). With `gate`,
    it then waits, inside its transaction, for the advisory lock `gate` (which the test
    holds), without a lock_timeout: the test decides when it goes on."""
    head = migrate.heads()[0].revision
    wait = (f'op.execute("SET LOCAL lock_timeout = 0")\n                op.execute("SELECT pg_advisory_xact_lock({gate})")'
            if gate is not None else "pass")
    directory = tmp_path / "probe_versions"
    directory.mkdir()
    (directory / "9001_lock_probe.py").write_text(
        textwrap.dedent(
            f'''
            """Lock probe: ALTER TABLE entities (test only)."""
            from alembic import op

            revision = "9001_lock_probe"
            down_revision = "{head}"
            branch_labels = None
            depends_on = None


            def upgrade():
                op.execute("ALTER TABLE entities ADD COLUMN lock_probe integer")
                {wait}


            def downgrade():
                op.execute("ALTER TABLE entities DROP COLUMN lock_probe")
            '''
        )
    )
    return "9001_lock_probe", [str(directory)]


def hold_lock(url: str, sql: str, release: threading.Event, held: threading.Event) -> threading.Thread:
    """A thread whose transaction takes a lock and keeps it until `release` is set."""

    def body() -> None:
        with psycopg.connect(url, application_name="long-transaction") as conn:
            conn.execute(sql)
            held.set()
            release.wait(DEADLINE)
            conn.rollback()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    assert held.wait(DEADLINE), "the lock holder never got its lock"
    return thread


class _CountRetries(logging.Handler):
    """Counts the migration's "lock timeout ... retrying" warnings as they are logged."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "lock timeout" in record.getMessage():
            self.count += 1


def _queued(conn: psycopg.Connection, pid: int, table: str) -> bool:
    """Whether backend `pid` waits for a lock on `table` right now."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND relation = to_regclass(%s) AND NOT granted)", (pid, table)
    ).fetchone()
    return bool(row and row[0])


# The ALTER's lock_timeout. A reader queued behind the waiting ALTER waits at most that
# long (the ALTER gives up, its request leaves the queue); the bound on a reader's
# latency is that timeout plus 1.5 s of headroom for a loaded machine.
LOCK_TIMEOUT = 0.5
QUEUED_READ_BOUND = LOCK_TIMEOUT + 1.5


def test_upgrade_gives_up_within_lock_timeout_retries_and_succeeds_after_release(db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A long transaction holds ACCESS SHARE on `entities`; the upgrade's ALTER times out
    and retries. The holder lets go only once the test has seen two retries logged AND a
    reader that queued behind the waiting ALTER (pg_locks) get through while the lock was
    still held: both are facts before the release, at any machine speed."""
    target, locations = probe_revision(tmp_path)
    release, held = threading.Event(), threading.Event()
    holder = hold_lock(db_url, "LOCK TABLE entities IN ACCESS SHARE MODE", release, held)
    retries_seen = _CountRetries()
    logging.getLogger("trackschema.migrate").addHandler(retries_seen)

    # Application traffic arriving while the migration waits for its lock.
    reader_latencies: list[float] = []
    reader_pid: list[int] = []
    stop_reading = threading.Event()

    def reader() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            reader_pid.append(conn.info.backend_pid)
            while not stop_reading.is_set():
                started = time.monotonic()
                conn.execute("SELECT count(*) FROM entities")
                reader_latencies.append(time.monotonic() - started)
                time.sleep(0.01)  # pacing only: nothing is decided by it

    released_after: list[int] = []  # the retries logged when the holder let go

    def monitor() -> None:
        """Release the holder once a queued read went through and two retries were logged."""
        with psycopg.connect(db_url, autocommit=True) as watching:
            wait_until(lambda: reader_pid, "the reader to connect")
            queued_at: list[int] = []  # reads done when the reader was seen queued

            def read_passed_and_two_retries() -> bool:
                if not queued_at and _queued(watching, reader_pid[0], "entities"):
                    queued_at.append(len(reader_latencies))  # that read is not counted yet (or is: then the next one must pass)
                return bool(queued_at) and len(reader_latencies) > queued_at[0] and retries_seen.count >= 2

            wait_until(read_passed_and_two_retries, "a queued read to pass and two retries to be logged")
            assert not release.is_set()
            released_after.append(retries_seen.count)

    reading = threading.Thread(target=reader, daemon=True)
    reading.start()
    settings = make_settings(db_url, lock_timeout=LOCK_TIMEOUT, lock_retries=30, retry_backoff=0.2)
    try:
        with watcher(monitor, release=release.set):
            try:
                with caplog.at_level(logging.WARNING, logger="trackschema.migrate"):
                    result = migrate.upgrade(settings, target, extra_version_locations=locations)
            finally:
                logging.getLogger("trackschema.migrate").removeHandler(retries_seen)
                release.set()
    finally:
        stop_reading.set()
        reading.join(DEADLINE)
        holder.join(DEADLINE)

    retries = [r for r in caplog.records if "lock timeout" in r.getMessage()]
    # the upgrade timed out and retried at least twice while the lock was held (the
    # holder was released only after that), then succeeded
    assert released_after and released_after[0] >= 2 and len(retries) >= released_after[0]
    assert "long-transaction" in retries[0].getMessage()  # names the likely blocker
    assert result.after == [target]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'entities' AND column_name = 'lock_probe'").fetchone() == (1,)
    # Readers queued behind the waiting ALTER for at most about one lock_timeout (a
    # bound on time is the property here; see QUEUED_READ_BOUND). One of them was seen
    # queued, and went through while the long transaction still held its lock.
    assert reader_latencies and max(reader_latencies) < QUEUED_READ_BOUND, max(reader_latencies)


def test_upgrade_gives_up_after_its_retries_and_stays_at_the_previous_revision(db_url: str, tmp_path: Path) -> None:
    target, locations = probe_revision(tmp_path)
    before = migrate.current_heads(make_settings(db_url))
    release, held = threading.Event(), threading.Event()
    holder = hold_lock(db_url, "LOCK TABLE entities IN ACCESS SHARE MODE", release, held)
    try:
        with pytest.raises(LockRetriesExhausted, match=r"gave up after 2 attempts.*long-transaction"):
            migrate.upgrade(make_settings(db_url, lock_timeout=0.3, lock_retries=1, retry_backoff=0.1), target, extra_version_locations=locations)
    finally:
        release.set()
        holder.join(DEADLINE)
    assert migrate.current_heads(make_settings(db_url)) == before


def test_second_upgrade_waits_for_the_lock_then_exits_2_naming_the_holder(db_url: str) -> None:
    lock_wait = 1.0
    with psycopg.connect(db_url, autocommit=True, application_name="other-migration") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (db.MIGRATION_LOCK_KEY,))
        pid = conn.info.backend_pid
        started = time.monotonic()
        with pytest.raises(MigrationLockBusy, match=f"pid {pid}.*other-migration"):
            migrate.upgrade(make_settings(db_url, lock_wait=lock_wait), "head")
        waited = time.monotonic() - started
        # The bound is the property: it waited out lock_wait (the server's lock_timeout
        # cannot fire early; 10% allows for two clocks) and then gave up (the lock is
        # never released here; 30 s of headroom for a loaded machine to load Alembic).
        assert 0.9 * lock_wait <= waited < lock_wait + 30
        cli = run_cli("upgrade", "--lock-wait", "1s", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert cli.returncode == 2
    assert f"pid {pid}" in cli.stderr and "Traceback" not in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1


def test_two_concurrent_upgrades_apply_the_revision_exactly_once(db_url: str, tmp_path: Path) -> None:
    """Two processes (Alembic's context is process-global) upgrade at once. They overlap by
    construction: the probe revision waits inside its transaction for an advisory lock the
    test holds, and the test lets it go on only once pg_locks shows one process waiting
    there and the other waiting for the migration lock."""
    target, locations = probe_revision(tmp_path, gate=GATE)
    script = (
        "import json, sys; from trackschema.migrations import runner as migrate; from tests.conftest import make_settings; "
        f"r = migrate.upgrade(make_settings({db_url!r}, lock_wait=120), {target!r}, extra_version_locations={locations!r}); "
        "print(json.dumps(len(r.applied)))"
    )
    waiting = """SELECT count(*) FILTER (WHERE objid = %(gate)s), count(*) FILTER (WHERE objid = %(migration)s)
                   FROM pg_locks
                  WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objsubid = 1
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
    with psycopg.connect(db_url, autocommit=True) as gatekeeper:
        gatekeeper.execute("SELECT pg_advisory_lock(%s)", (GATE,))
        procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
        try:
            deadline = time.monotonic() + DEADLINE
            while gatekeeper.execute(waiting, {"gate": GATE, "migration": db.MIGRATION_LOCK_KEY}).fetchone() != (1, 1):
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
                assert time.monotonic() < deadline, "the two upgrades never overlapped (one in the revision, one waiting for the migration lock)"
                time.sleep(POLL)
        finally:
            gatekeeper.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
            outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(int(out.strip()) for out, _ in outputs) == [0, 1]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(target,)]
