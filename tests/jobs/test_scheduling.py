"""`trackschema jobs schedule` against a PostgreSQL with pg_cron preloaded, and without.

The pg_cron server is a dedicated local cluster started with
`shared_preload_libraries = 'pg_cron'` (Debian package postgresql-15-cron; `./run`
installs it on a fresh machine), unless the session's server already preloads pg_cron.
pg_cron keeps its jobs in the `postgres` database; the tests' databases are others, so
the cross-database path (`cron.schedule_in_database`) is the one exercised.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import create_database, drop_database, make_settings, run_cli
from trackschema.jobs import registry as jobs
from trackschema.jobs import schedules as scheduling
from trackschema.errors import ProvisioningError
from trackschema.runtime.provision import PostgresServer, provision
from trackschema.runtime.settings import libpq_url
from trackschema.testing.databases import Admin, Template

# One worker runs the whole module (--dist loadgroup): the pg_cron server and its template
# are built once, and the minute-long wait of test_pg_cron_really_runs_a_scheduled_job
# starts first (tests/durations.txt) while the other worker keeps going.
pytestmark = pytest.mark.xdist_group("pg_cron")

PG_CRON_CONF = {"shared_preload_libraries": "'pg_cron'", "cron.database_name": "'postgres'"}


@pytest.fixture(scope="module")
def cron_server(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    with psycopg.connect(libpq_url(pg_server.url), autocommit=True) as conn:
        if scheduling.pg_cron_database(conn):
            yield pg_server
            return
    try:
        server = provision(mode="local", extra_conf=PG_CRON_CONF)
    except ProvisioningError as exc:
        pytest.fail(f"cannot start PostgreSQL with pg_cron preloaded (apt-get install postgresql-15-cron): {exc}")
    with cron_admin(server) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cron_templates(cron_server: PostgresServer) -> Iterator[Template]:
    """The pg_cron server's template at head (the plugin's Template: rebuilt when the month changes)."""
    template = Template(Admin(cron_server.url), f"ts_cron_template_{os.getpid()}", settings=make_settings)
    yield template
    template.drop()


@pytest.fixture
def cron_template(cron_templates: Template) -> str:
    return cron_templates.current()


@pytest.fixture
def cron_db(cron_server: PostgresServer, cron_templates: Template) -> Iterator[str]:
    """A database at head on the pg_cron server; its pg_cron entries are removed afterwards."""
    with cron_templates.database("ts_cron") as db:
        yield db.url
        with cron_admin(cron_server) as conn:
            conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = %s", (db.name,))


def cron_admin(server: PostgresServer) -> psycopg.Connection:
    return psycopg.connect(libpq_url(server.url), autocommit=True)


def cron_rows(server: PostgresServer, database: str) -> list[tuple]:
    with cron_admin(server) as conn:
        return conn.execute(
            "SELECT jobname, schedule, command, active FROM cron.job WHERE database = %s ORDER BY jobname", (database,)
        ).fetchall()


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def sql_jobs() -> list[str]:
    """The registered jobs with a SQL entry point (the ones pg_cron gets), in name order."""
    names = sorted(name for name, spec in jobs.registry().items() if spec.sql)
    assert {"aggregate-daily", "refresh-matviews", "retention"} <= set(names)
    return names


def schedule_lib(url: str, **options: bool) -> dict:
    """The library call behind `jobs schedule` (the CLI is exercised in the tests that need it)."""
    return scheduling.schedule(make_settings(url), **options).to_dict()


def schedule_cli(url: str, *args: str) -> dict:
    out = run_cli("jobs", "schedule", "--json", *args, env={"TRACKSCHEMA_DATABASE_URL": url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_schedule_twice_leaves_one_pg_cron_entry_per_job(cron_server: PostgresServer, cron_db: str) -> None:
    db = dbname(cron_db)
    with cron_admin(cron_server) as conn:
        # an entry of a job that is no longer registered, and someone else's entry
        conn.execute("SELECT cron.schedule_in_database(%s, '0 1 * * *', 'SELECT 1', %s)", (f"trackschema:{db}:retired-job", db))
        conn.execute("SELECT cron.schedule_in_database('nightly-report', '0 4 * * *', 'SELECT 2', %s)", (db,))

    first = schedule_cli(cron_db)
    assert first["pg_cron"]["database"] == "postgres"
    by_job = {j["job"]: j for j in first["jobs"]}
    assert set(by_job) == set(jobs.registry()), "every registered job is scheduled, one way or the other"
    refresh = by_job["refresh-matviews"]
    assert (refresh["runner"], refresh["action"], refresh["schedule"]) == ("pg_cron", "created", "*/5 * * * *")
    assert by_job["vacuum-analyze"]["runner"] == "crontab"
    assert first["removed"] == [f"trackschema:{db}:retired-job"]
    assert "0 3 * * 0 " in first["crontab"] and "jobs run vacuum-analyze" in first["crontab"]

    second = schedule_cli(cron_db)
    assert {j["job"]: j["action"] for j in second["jobs"] if j["runner"] == "pg_cron"} == {
        name: "unchanged" for name, spec in jobs.registry().items() if spec.sql
    }
    assert second["removed"] == []

    rows = cron_rows(cron_server, db)
    ours = [r for r in rows if r[0].startswith("trackschema:")]
    expected = sorted(
        (f"trackschema:{db}:{name}", spec.schedule, spec.sql, True) for name, spec in jobs.registry().items() if spec.sql
    )
    assert ours == expected
    assert len({r[0] for r in ours}) == len(ours)
    assert ("nightly-report", "0 4 * * *", "SELECT 2", True) in rows, "entries that are not ours are left alone"


def test_a_changed_entry_is_put_back_and_another_database_gets_its_own(cron_server: PostgresServer, cron_db: str, cron_template: str) -> None:
    db = dbname(cron_db)
    schedule_lib(cron_db)
    with cron_admin(cron_server) as conn:
        conn.execute("UPDATE cron.job SET schedule = '0 * * * *', active = false WHERE jobname = %s", (f"trackschema:{db}:refresh-matviews",))
    again = schedule_lib(cron_db)
    assert {j["job"]: j["action"] for j in again["jobs"]}["refresh-matviews"] == "updated"
    assert (f"trackschema:{db}:refresh-matviews", "*/5 * * * *", 'CALL "trackschema"."refresh_matviews"(NULL)', True) in cron_rows(cron_server, db)

    other = create_database(cron_server, f"{db}_b", template=cron_template)
    try:
        schedule_lib(other)
        assert [r[0] for r in cron_rows(cron_server, f"{db}_b")] == [f"trackschema:{db}_b:{name}" for name in sql_jobs()]
        assert [r[0] for r in cron_rows(cron_server, db)] == [f"trackschema:{db}:{name}" for name in sql_jobs()]
    finally:
        with cron_admin(cron_server) as conn:
            conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = %s", (f"{db}_b",))
        drop_database(cron_server, f"{db}_b")


def test_registry_drives_the_schedule(cron_server: PostgresServer, cron_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs other modules register are scheduled too; unregistering one unschedules it."""
    db = dbname(cron_db)
    registry = dict(jobs.registry())
    extra = {
        "analyze-roadmap": jobs.Job("analyze-roadmap", "0 2 * * *", "test", lambda c, p: {},
                                    "CALL trackschema.run_job_sql('analyze-roadmap', 'ANALYZE roadmap_items')"),
        "python-only": jobs.Job("python-only", "30 4 * * *", "test", lambda c, p: {}),
    }
    monkeypatch.setattr(jobs, "_REGISTRY", {**registry, **extra})
    result = scheduling.schedule(make_settings(cron_db))
    runners = {j.job: (j.runner, j.action) for j in result.jobs}
    assert runners["analyze-roadmap"] == ("pg_cron", "created")
    assert runners["python-only"] == ("crontab", "print")
    assert "30 4 * * * " in result.crontab and "jobs run python-only" in result.crontab
    assert f"trackschema:{db}:analyze-roadmap" in [r[0] for r in cron_rows(cron_server, db)]

    monkeypatch.setattr(jobs, "_REGISTRY", registry)
    result = scheduling.schedule(make_settings(cron_db))
    assert result.removed == [f"trackschema:{db}:analyze-roadmap"]
    assert [r[0] for r in cron_rows(cron_server, db)] == [f"trackschema:{db}:{name}" for name in sql_jobs()]


def test_the_pg_cron_command_runs_without_python_and_is_recorded(cron_server: PostgresServer, cron_db: str) -> None:
    db = dbname(cron_db)
    schedule_lib(cron_db)
    commands = {r[0]: r[2] for r in cron_rows(cron_server, db)}
    command = commands[f"trackschema:{db}:refresh-matviews"]
    # what pg_cron does: a fresh session in the job's database sends the command text
    with psycopg.connect(cron_db, autocommit=True) as session:
        session.execute(command)  # type: ignore[arg-type]
        pid = session.info.backend_pid
    with psycopg.connect(cron_db, autocommit=True) as conn:
        # (pg_cron itself may run the job too if a 5-minute boundary passes: pick our run by its pid)
        run = conn.execute(
            "SELECT job, status, params->>'via', result->'refreshed' FROM trackschema.job_runs WHERE backend_pid = %s", (pid,)
        ).fetchall()
    assert len(run) == 1 and run[0][:3] == ("refresh-matviews", "succeeded", "sql") and len(run[0][3]) == 3


def test_remove_and_crontab_only(cron_server: PostgresServer, cron_db: str) -> None:
    db = dbname(cron_db)
    listed = schedule_cli(cron_db, "--crontab")
    assert listed["crontab_only"] and cron_rows(cron_server, db) == []
    assert "*/5 * * * * " in listed["crontab"] and "jobs run refresh-matviews" in listed["crontab"]
    schedule_lib(cron_db)
    ours = [f"trackschema:{db}:{name}" for name in sql_jobs()]
    assert [r[0] for r in cron_rows(cron_server, db)] == ours
    removed = schedule_cli(cron_db, "--remove")
    assert removed["removed"] == ours and removed["jobs"] == []
    assert cron_rows(cron_server, db) == []
    both = run_cli("jobs", "schedule", "--remove", "--crontab", env={"TRACKSCHEMA_DATABASE_URL": cron_db})
    assert both.returncode == 2 and "choose one" in both.stderr


def test_without_pg_cron_prints_crontab_lines(db_url: str, pg_server: PostgresServer) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert scheduling.pg_cron_database(conn) is None, "the session's server runs without pg_cron"
    with_password = db_url.replace("postgres@", "postgres:s3cret@", 1)
    out = run_cli("jobs", "schedule", env={"TRACKSCHEMA_DATABASE_URL": with_password})
    assert out.returncode == 0, out.stderr
    assert "pg_cron is not loaded" in out.stdout and "CRON_TZ=UTC" in out.stdout
    lines = [line for line in out.stdout.splitlines() if " jobs run " in line and not line.startswith(("#", "│", "┃"))]
    assert sorted(line.split(" jobs run ")[1] for line in lines) == sorted(jobs.registry())
    assert any(line.startswith("*/5 * * * * ") and line.endswith("jobs run refresh-matviews") for line in lines)
    assert f"TRACKSCHEMA_DATABASE_URL=postgresql://postgres@{db_url.split('@', 1)[1]}" in out.stdout
    assert "s3cret" not in out.stdout + out.stderr
    refused = run_cli("jobs", "schedule", "--remove", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert refused.returncode == 2 and "pg_cron is not loaded" in refused.stderr


def test_creates_the_extension_when_only_the_library_is_loaded(cron_server: PostgresServer, cron_db: str) -> None:
    with cron_admin(cron_server) as conn:
        conn.execute("DROP EXTENSION pg_cron")
    try:
        result = schedule_lib(cron_db)
        assert result["pg_cron"]["created_extension"] is True
        assert [r[0] for r in cron_rows(cron_server, dbname(cron_db))] == [f"trackschema:{dbname(cron_db)}:{name}" for name in sql_jobs()]
        assert schedule_lib(cron_db)["pg_cron"]["created_extension"] is False
    finally:
        with cron_admin(cron_server) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")


def test_pg_cron_really_runs_a_scheduled_job(cron_server: PostgresServer, cron_db: str) -> None:
    """The whole path, not just the cron.job row: pg_cron's launcher connects to the
    database, runs the job's SQL entry point, and the run lands in trackschema.job_runs
    like a CLI run. pg_cron 1.4 fires on minute boundaries, so the entry is rescheduled to
    every minute and the test polls for the first finished run: it comes within about a
    minute; the deadline of 150 s only turns a run that never comes into a clear failure.
    The entry keeps firing every minute meanwhile, so a later run may still be in flight
    when the test reads the results: only finished runs are required to have succeeded."""
    db = dbname(cron_db)
    with psycopg.connect(libpq_url(cron_db), autocommit=True) as conn:
        before = conn.execute("SELECT max(refreshed_at) FROM trackschema.matview_refreshes").fetchone()[0]  # type: ignore[index]
    schedule_lib(cron_db)
    name = f"trackschema:{db}:refresh-matviews"
    with cron_admin(cron_server) as conn:
        conn.execute("UPDATE cron.job SET schedule = '* * * * *' WHERE jobname = %s", (name,))
        jobid = conn.execute("SELECT jobid FROM cron.job WHERE jobname = %s", (name,)).fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + 150
    details: tuple | None = None
    while time.monotonic() < deadline:
        with cron_admin(cron_server) as conn:
            details = conn.execute(
                "SELECT status, command, return_message FROM cron.job_run_details WHERE jobid = %s AND status IN ('succeeded', 'failed')"
                " ORDER BY start_time LIMIT 1", (jobid,)
            ).fetchone()
        if details:
            break
        time.sleep(1)
    assert details is not None, "pg_cron did not run the job within 150 s"
    assert details[0] == "succeeded", details
    assert details[1] == 'CALL "trackschema"."refresh_matviews"(NULL)'
    with psycopg.connect(libpq_url(cron_db), autocommit=True) as conn:
        runs = conn.execute("SELECT status FROM trackschema.job_runs WHERE job = 'refresh-matviews'").fetchall()
        views = conn.execute("SELECT view_name, refreshed_at > %s, refresh_mode FROM trackschema.matview_refreshes", (before,)).fetchall()
    finished = [r[0] for r in runs if r[0] != "running"]  # a later minute's run may be under way
    assert finished and set(finished) == {"succeeded"}, runs
    assert views and all(fresh and mode == "concurrently" for _, fresh, mode in views), views
