"""The job registry: runs recorded, overlap refused, failures recorded with exit 1;
schedules checked at registration; the SQL side uses the same lock."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from tests.conftest import make_settings, run_cli
from trackschema.jobs import registry as jobs
from trackschema.runtime.settings import project_root

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)


@pytest.fixture
def scratch_jobs():  # noqa: ANN201
    """Two throwaway jobs: one that blocks until released, one that fails."""
    release, entered = threading.Event(), threading.Event()

    @jobs.job("test-blocking", schedule="* * * * *", description="waits for the test")
    def blocking(conn, params):  # noqa: ANN001, ANN202
        entered.set()
        release.wait(90)
        return {"waited": True}

    @jobs.job("test-failing", schedule="* * * * *", description="always fails")
    def failing(conn, params):  # noqa: ANN001, ANN202
        conn.execute("SELECT 1/0")
        return {}

    yield release, entered
    release.set()
    jobs._REGISTRY.pop("test-blocking", None)  # noqa: SLF001
    jobs._REGISTRY.pop("test-failing", None)  # noqa: SLF001


def test_run_is_recorded_and_listed(db_url: str) -> None:
    result = run_cli("jobs", "run", "vacuum-analyze", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded" and "entity_events" in run["result"]["tables"]
    listed = json.loads(run_cli("jobs", "list", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url}).stdout)
    entry = next(j for j in listed if j["name"] == "vacuum-analyze")
    assert set(entry) >= {"name", "schedule", "last_run", "last_status"} and entry["last_status"] == "succeeded"


def test_overlapping_run_is_refused(db_url: str, scratch_jobs) -> None:  # noqa: ANN001
    release, entered = scratch_jobs
    settings = make_settings(db_url)
    first = threading.Thread(target=jobs.run, args=(settings, "test-blocking"))
    first.start()
    assert entered.wait(90), "the first run never started"  # a deadline no machine comes near
    with pytest.raises(jobs.JobBusy, match="already running"):
        jobs.run(settings, "test-blocking")
    release.set()
    first.join(90)
    assert not first.is_alive(), "the first run did not finish once released"
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT status FROM trackschema.job_runs WHERE job = 'test-blocking'").fetchall()
    assert rows == [("succeeded",)]


def test_failure_is_recorded_with_its_error(db_url: str, scratch_jobs) -> None:  # noqa: ANN001
    with pytest.raises(jobs.JobFailed) as raised:
        jobs.run(make_settings(db_url), "test-failing")
    assert raised.value.exit_code == 1
    with psycopg.connect(db_url) as conn:
        status, error, finished = conn.execute(
            "SELECT status, error, finished_at IS NOT NULL FROM trackschema.job_runs WHERE job = 'test-failing'"
        ).fetchone()  # type: ignore[misc]
    assert status == "failed" and "division by zero" in error and finished


def test_unknown_job_exit_2(db_url: str) -> None:
    result = run_cli("jobs", "run", "no-such-job", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 2 and "jobs list" in result.stderr


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "0 2 * * *", "0 2 * * 0", "15 3 1 * *", "0 0-6/2 * * 1,3,5", "30 4 * * 7"])
def test_valid_schedules_register(schedule: str) -> None:
    jobs.check_schedule(schedule)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("*/5 * * *", "five cron fields"),
        ("every 5 minutes", "five cron fields"),
        ("61 * * * *", "61 is outside 0-59"),
        ("0 24 * * *", "24 is outside 0-23"),
        ("0 2 * 13 *", "13 is outside 1-12"),
        ("0 2 * * mon", "cannot read field 'mon'"),
    ],
)
def test_bad_schedules_fail_at_registration(schedule: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jobs.job("bad", schedule=schedule, description="never registered")


def test_every_registered_job_has_a_valid_schedule_and_the_registry_holds_ours() -> None:
    registry = jobs.registry()
    assert {"vacuum-analyze", "refresh-matviews"} <= set(registry)
    for spec in registry.values():
        jobs.check_schedule(spec.schedule)
    assert registry["refresh-matviews"].sql == 'CALL "trackschema"."refresh_matviews"(NULL)'


def test_sql_entry_points_use_the_cli_job_lock() -> None:
    """`trackschema jobs run` and trackschema.job_run_begin() must contend for one lock."""
    for name in ("job_run_begin.v1.sql", "job_run_end.v1.sql"):
        text = (project_root() / "sql" / "functions" / name).read_text()
        assert f"({jobs.JOB_LOCK_CLASS}, hashtext(" in text


def test_a_run_killed_mid_way_shows_abandoned_and_the_next_run_records_it_failed(db_url: str, conn: psycopg.Connection) -> None:
    """kill -9 of `jobs run` while its VACUUM waits on a lock the test holds: the row stays
    'running' in the table, history shows it abandoned once its session is gone, and the
    next run is not blocked: it records the old row as failed and runs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    holder = psycopg.connect(db_url)
    holder.execute("LOCK TABLE entity_events IN ACCESS EXCLUSIVE MODE")
    env = {**os.environ, "TRACKSCHEMA_DATABASE_URL": db_url}
    worker = subprocess.Popen([sys.executable, "-m", "trackschema", "jobs", "run", "vacuum-analyze", "--param", "tables=entity_events"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        backend = None
        deadline = time.monotonic() + 90  # polls of what the job does; no machine comes near the deadline
        while backend is None and time.monotonic() < deadline:  # until its VACUUM waits for our lock
            row = conn.execute(
                """SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
                    WHERE a.application_name = 'trackschema-job:vacuum-analyze' AND NOT l.granted
                      AND l.relation = 'entity_events'::regclass"""
            ).fetchone()
            backend = row[0] if row else None
            time.sleep(0.02)
        assert backend is not None, "the job never reached its VACUUM"
        worker.send_signal(signal.SIGKILL)
        worker.wait(90)
        conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
        deadline = time.monotonic() + 90
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone():
            assert time.monotonic() < deadline, "the killed job's backend did not end"
            time.sleep(0.02)
    finally:
        holder.close()
        if worker.poll() is None:
            worker.kill()
    assert conn.execute("SELECT status FROM trackschema.job_runs WHERE job = 'vacuum-analyze'").fetchall() == [("running",)]
    shown = json.loads(run_cli("jobs", "history", "vacuum-analyze", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url}).stdout)
    assert [r["status"] for r in shown] == ["abandoned"]

    again = run_cli("jobs", "run", "vacuum-analyze", "--param", "tables=entity_events", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert again.returncode == 0, again.stderr
    rows = conn.execute("SELECT status, error FROM trackschema.job_runs WHERE job = 'vacuum-analyze' ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["failed", "succeeded"]
    assert rows[0][1].startswith("abandoned: its session ended before it recorded an outcome")


def test_each_job_is_found_in_the_module_that_registers_it() -> None:
    """`get(name)` imports only JOB_HOMES[name]: the map must name every job trackschema
    registers, and the module its function lives in."""
    registered = jobs.registry()
    ours = {name: job for name, job in registered.items() if job.fn.__module__.startswith("trackschema.")}
    assert set(ours) == set(jobs.JOB_HOMES)
    assert {name: job.fn.__module__ for name, job in ours.items()} == jobs.JOB_HOMES
