"""Safe running: the migration advisory lock, lock_timeout with retries, bounded queueing.

A probe revision, written next to the test and chained onto the current head through an
extra version location, does what real revisions do: ALTER TABLE on a busy table.
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
from trackschema.runtime import db
from trackschema.migrations import runner as migrate
from trackschema.errors import LockRetriesExhausted, MigrationLockBusy


def probe_revision(tmp_path: Path, *, sleep: float = 0.0) -> tuple[str, list[str]]:
    """A revision that adds a column to `entities` (needs ACCESS EXCLUSIVE), optionally slow."""
    head = migrate.heads()[0].revision
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
                op.execute("SELECT pg_sleep({sleep})")


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
            release.wait(60)
            conn.rollback()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    assert held.wait(10)
    return thread


def test_upgrade_gives_up_within_lock_timeout_retries_and_succeeds_after_release(db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target, locations = probe_revision(tmp_path)
    release, held = threading.Event(), threading.Event()
    holder = hold_lock(db_url, "LOCK TABLE entities IN ACCESS SHARE MODE", release, held)
    threading.Timer(3.0, release.set).start()

    # Application traffic arriving while the migration waits for its lock.
    reader_latencies: list[float] = []
    stop_reading = threading.Event()

    def reader() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop_reading.is_set():
                started = time.monotonic()
                conn.execute("SELECT count(*) FROM entities")
                reader_latencies.append(time.monotonic() - started)
                time.sleep(0.05)

    reading = threading.Thread(target=reader, daemon=True)
    reading.start()
    settings = make_settings(db_url, lock_timeout=0.5, lock_retries=20, retry_backoff=0.2)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trackschema.migrate"):
        result = migrate.upgrade(settings, target, extra_version_locations=locations)
    elapsed = time.monotonic() - started
    stop_reading.set()
    reading.join(5)
    holder.join(5)

    retries = [r for r in caplog.records if "lock timeout" in r.getMessage()]
    assert len(retries) >= 2, "the upgrade should have timed out and retried while the lock was held"
    assert "long-transaction" in retries[0].getMessage()  # names the likely blocker
    assert elapsed >= 2.5
    assert result.after == [target]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'entities' AND column_name = 'lock_probe'").fetchone() == (1,)
    # Readers queued behind the waiting ALTER for at most about one lock_timeout.
    assert reader_latencies and max(reader_latencies) < 0.5 + 0.75


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
        holder.join(5)
    assert migrate.current_heads(make_settings(db_url)) == before


def test_second_upgrade_waits_for_the_lock_then_exits_2_naming_the_holder(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True, application_name="other-migration") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (db.MIGRATION_LOCK_KEY,))
        pid = conn.info.backend_pid
        started = time.monotonic()
        with pytest.raises(MigrationLockBusy, match=f"pid {pid}.*other-migration"):
            migrate.upgrade(make_settings(db_url, lock_wait=1.0), "head")
        assert 0.9 <= time.monotonic() - started < 10
        cli = run_cli("upgrade", "--lock-wait", "1s", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert cli.returncode == 2
    assert f"pid {pid}" in cli.stderr and "Traceback" not in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1


def test_two_concurrent_upgrades_apply_the_revision_exactly_once(db_url: str, tmp_path: Path) -> None:
    """Two processes (Alembic's context is process-global) upgrade at once."""
    target, locations = probe_revision(tmp_path, sleep=1.5)
    script = (
        "import json, sys; from trackschema.migrations import runner as migrate; from tests.conftest import make_settings; "
        f"r = migrate.upgrade(make_settings({db_url!r}, lock_wait=30), {target!r}, extra_version_locations={locations!r}); "
        "print(json.dumps(len(r.applied)))"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(int(out.strip()) for out, _ in outputs) == [0, 1]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(target,)]
