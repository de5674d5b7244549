"""`trackschema jobs schedule`: run every registered job at its cadence, with pg_cron or cron.

Where pg_cron runs on the server (its library is preloaded, so `cron.database_name` is
set), each job that has a SQL entry point (`@job(..., procedure=...)`, e.g.
`CALL "trackschema"."refresh_matviews"(NULL)`) is registered with
`cron.schedule_in_database(name, schedule, sql, <this database>)`. pg_cron runs SQL only:
there is no Python inside the database, so a job that exists only in Python is given a
crontab line calling `trackschema jobs run NAME` instead (printed, for the operator to
install on a host with trackschema). Both runners record runs in `trackschema.job_runs`
and take the same per-job advisory lock, so a pg_cron run and a CLI run never overlap.

Registration is idempotent: the pg_cron entries of this database are named
`trackschema:<database>:<job>`; running `schedule` again updates changed entries, leaves
equal ones alone, and unschedules entries for jobs that are no longer registered or no
longer have a SQL entry point. pg_cron keeps its jobs in one database
(`cron.database_name`); when that is not this database, `schedule` connects there with
the same credentials. pg_cron schedules are in GMT, as are the registry's.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from trackschema.jobs import registry as jobs
from trackschema.runtime.db import connect
from trackschema.errors import TrackschemaError
from trackschema.runtime.settings import Settings, libpq_url, mask_password, sqlalchemy_url, with_database

CRON_NAME_PREFIX = "trackschema:"
# Serialises two `jobs schedule` runs against the same pg_cron database.
SCHEDULE_LOCK_KEY = "trackschema:jobs-schedule"


@dataclass(frozen=True)
class PgCron:
    """pg_cron as found on the server."""

    database: str  # where the extension and cron.job live (cron.database_name)
    version: str
    created_extension: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ScheduledJob:
    """One job and how it is scheduled.

    `runner` is `pg_cron` or `crontab`; `action` is what this run did: `created`,
    `updated`, `unchanged` (pg_cron), or `print` (a crontab line to install).
    """

    job: str
    schedule: str
    runner: str
    command: str
    action: str
    cron_job_name: str | None = None
    cron_job_id: int | None = None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class ScheduleResult:
    database: str
    pg_cron: PgCron | None
    jobs: list[ScheduledJob] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    crontab: str = ""
    crontab_only: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "database": self.database,
            "pg_cron": self.pg_cron.to_dict() if self.pg_cron else None,
            "crontab_only": self.crontab_only,
            "jobs": [j.to_dict() for j in self.jobs],
            "removed": self.removed,
            "crontab": self.crontab,
        }


def cron_job_name(database: str, job: str) -> str:
    """`trackschema:<database>:<job>`, shortened with a hash of the database name to fit a
    63-byte `name`."""
    name = f"{CRON_NAME_PREFIX}{database}:{job}"
    if len(name.encode()) <= 63:
        return name
    return f"{CRON_NAME_PREFIX}{hashlib.sha1(database.encode()).hexdigest()[:12]}:{job}"[:63]


def pg_cron_database(conn: psycopg.Connection) -> str | None:
    """The database pg_cron keeps its jobs in, or None when pg_cron is not loaded.

    `cron.database_name` exists only when the library is in shared_preload_libraries
    (which non-superusers cannot read), so its presence is the test.
    """
    row = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()
    return row[0] if row and row[0] else None


def schedule(settings: Settings, *, crontab_only: bool = False, remove: bool = False) -> ScheduleResult:
    """Register every registered job with pg_cron where it runs; crontab lines otherwise.

    `crontab_only` changes nothing and prints crontab lines for every job. `remove`
    unschedules all of this database's pg_cron entries (e.g. before a downgrade).
    """
    if crontab_only and remove:
        raise TrackschemaError("--crontab changes nothing and --remove unschedules: choose one")
    url = settings.require_url()
    registry = jobs.registry()
    with connect(url) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
        database = str(row[0]) if row else ""
        cron_db = None if crontab_only else pg_cron_database(conn)
    result = ScheduleResult(database=database, pg_cron=None, crontab_only=crontab_only)
    if cron_db is None:
        if remove:
            raise TrackschemaError("pg_cron is not loaded on this server: there is nothing to unschedule (remove the crontab lines by hand)")
        result.jobs = [_crontab_entry(j) for j in registry.values()]
        result.crontab = crontab_text(url, result.jobs)
        return result

    wanted = {} if remove else {cron_job_name(database, j.name): j for j in registry.values() if j.sql}
    cron_url = url if cron_db == database else with_database(url, cron_db)
    with connect(cron_url, application_name="trackschema-schedule") as cron:
        result.pg_cron = _ensure_extension(cron, cron_db)
        try:
            with cron.transaction():
                cron.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (jobs.JOB_LOCK_CLASS, SCHEDULE_LOCK_KEY))
                result.jobs, result.removed = _sync(cron, database, wanted)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise TrackschemaError(
                f"not allowed to manage pg_cron jobs in database {cron_db} ({str(exc).strip().splitlines()[0]}): "
                "run `jobs schedule` as a superuser, or have one GRANT EXECUTE ON FUNCTION cron.schedule_in_database to this role"
            ) from None
    if not remove:
        python_only = [_crontab_entry(j) for j in registry.values() if not j.sql]
        result.jobs = sorted(result.jobs + python_only, key=lambda entry: entry.job)
        result.crontab = crontab_text(url, python_only) if python_only else ""
    return result


def _ensure_extension(cron: psycopg.Connection, cron_db: str) -> PgCron:
    """The pg_cron extension in its database, created there when the library is loaded but
    the extension is not (that needs a superuser)."""
    row = cron.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
    created = False
    if row is None:
        try:
            cron.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        except psycopg.Error as exc:
            raise TrackschemaError(
                f"pg_cron is loaded but its extension is missing in database {cron_db} and could not be created "
                f"({str(exc).strip().splitlines()[0]}): have a superuser run CREATE EXTENSION pg_cron there"
            ) from None
        row = cron.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
        created = True
    has_named = cron.execute(
        "SELECT to_regprocedure('cron.schedule_in_database(text,text,text,text,text,boolean)') IS NOT NULL"
    ).fetchone()
    if not has_named or not has_named[0]:
        raise TrackschemaError(
            f"pg_cron {row[0] if row else '?'} in database {cron_db} has no cron.schedule_in_database: "
            "upgrade it (ALTER EXTENSION pg_cron UPDATE; pg_cron 1.4 or newer)"
        )
    return PgCron(cron_db, str(row[0]) if row else "?", created)


def _sync(cron: psycopg.Connection, database: str, wanted: dict[str, jobs.Job]) -> tuple[list[ScheduledJob], list[str]]:
    """Make this database's `trackschema:` entries in cron.job exactly `wanted`."""
    existing = cron.execute(
        """SELECT jobid, jobname, schedule, command, active, username = current_user
             FROM cron.job
            WHERE database = %s AND starts_with(jobname, %s)
            ORDER BY jobid""",
        (database, CRON_NAME_PREFIX),
    ).fetchall()
    done: list[ScheduledJob] = []
    kept: set[int] = set()
    for name, spec in sorted(wanted.items()):
        assert spec.sql is not None
        mine = [row for row in existing if row[1] == name and row[5]]
        if mine and (mine[0][2], mine[0][3], mine[0][4]) == (spec.schedule, spec.sql, True):
            action, job_id = "unchanged", int(mine[0][0])
        elif mine:
            # schedule_in_database's upsert would leave a paused entry paused
            job_id = int(mine[0][0])
            cron.execute(
                "SELECT cron.alter_job(%s::bigint, schedule => %s, command => %s, database => %s, active => true)",
                (job_id, spec.schedule, spec.sql, database),
            )
            action = "updated"
        else:
            row = cron.execute(
                "SELECT cron.schedule_in_database(%s, %s, %s, %s)", (name, spec.schedule, spec.sql, database)
            ).fetchone()
            action, job_id = "created", int(row[0]) if row else -1
        kept.add(job_id)
        done.append(ScheduledJob(spec.name, spec.schedule, "pg_cron", spec.sql, action, name, job_id))
    removed: list[str] = []
    for job_id, name, *_ in existing:
        if job_id not in kept:
            cron.execute("SELECT cron.unschedule(%s::bigint)", (job_id,))
            removed.append(name)
    return done, removed


def _crontab_entry(spec: jobs.Job) -> ScheduledJob:
    return ScheduledJob(spec.name, spec.schedule, "crontab", f"{trackschema_command()} jobs run {shlex.quote(spec.name)}", "print")


def trackschema_command() -> str:
    """How cron should start this trackschema: the installed script next to the running
    Python (a virtualenv's bin/), else the one on PATH, else `python -m trackschema`."""
    beside = Path(sys.executable).with_name("trackschema")
    if beside.is_file():
        return shlex.quote(str(beside))
    found = shutil.which("trackschema")
    if found:
        return shlex.quote(found)
    return f"{shlex.quote(sys.executable)} -m trackschema"


def crontab_text(url: str, entries: list[ScheduledJob]) -> str:
    """Crontab lines for `entries`, with the database URL (never its password) in the
    environment."""
    from sqlalchemy.engine import URL, make_url  # only for crontab lines: not at every CLI start

    parsed = make_url(sqlalchemy_url(url))
    plain = URL.create(
        "postgresql", username=parsed.username, host=parsed.host, port=parsed.port, database=parsed.database, query=parsed.query
    ).render_as_string(hide_password=False)
    lines = [
        f"# trackschema jobs for {mask_password(libpq_url(url))} (from `trackschema jobs schedule`); schedules are UTC.",
        "# CRON_TZ needs cronie; with another cron run it in UTC. The password is not printed:",
        "# put it in ~/.pgpass of the crontab's user (or set PGPASSFILE).",
        "CRON_TZ=UTC",
        f"TRACKSCHEMA_DATABASE_URL={plain}",
    ]
    lines += [f"{entry.schedule} {entry.command}" for entry in entries]
    return "\n".join(lines) + "\n"

