"""The job registry and run history.

A job is a named, idempotent operation a scheduler runs (`trackschema jobs run NAME`,
pg_cron, cron). Modules register theirs with `@job(...)`; `JOB_MODULES` lists the
modules that hold jobs so the registry is complete whichever command loads it.

Every run is recorded in `trackschema.job_runs` (start, end, status, parameters,
result, error). Two runs of the same job never overlap: a run holds a session-level
advisory lock keyed on the job name for its whole duration, and a second run is refused.
The record of a run is written in its own short transactions, so it survives the job's
failure.

A job may also name a `procedure` that does the same work inside the database, recording
its run and taking the same advisory lock (through `trackschema.job_run_begin` /
`job_run_end`, or `CALL trackschema.run_job_sql(job, command)`). Its SQL entry point, `CALL`
with the declared defaults of the job's options (`sql_entry_point`), is what pg_cron
runs (`trackschema jobs schedule`); a job without one is scheduled by a crontab line
calling `trackschema jobs run NAME`.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from trackschema.runtime.db import connect
from trackschema.errors import TrackschemaError
from trackschema.operations.inputs import Count, Duration
from trackschema.operations.options import NoOptions, Options, option, param_label
from trackschema.runtime.settings import Settings

# Advisory-lock namespace for jobs: pg_try_advisory_lock(JOB_LOCK_CLASS, hashtext(name)).
JOB_LOCK_CLASS = 0x74726B02

# Where each job is registered with @job: `get(name)` imports only that module (the
# promotion backfill's loads Alembic, a third of a `jobs run` start-up); `registry()`
# imports them all. A test keeps this map and the registrations in agreement.
JOB_HOMES: dict[str, str] = {
    "vacuum-analyze": "trackschema.jobs.maintenance",
    "table-sizes": "trackschema.jobs.maintenance",
    "refresh-matviews": "trackschema.analytics.matviews",
    "aggregate-daily": "trackschema.analytics.jobs",
    "retention": "trackschema.analytics.jobs",
    "legacy-analytics-move": "trackschema.analytics.jobs",
    "partition-maintenance": "trackschema.partitions.monthly",
    "archive-tracking": "trackschema.partitions.archive",
    "promotion-backfill": "trackschema.promotions.backfill",
}
JOB_MODULES: tuple[str, ...] = tuple(dict.fromkeys(JOB_HOMES.values()))

JobFunction = Callable[[psycopg.Connection, Any], dict[str, Any]]


@dataclass(frozen=True)
class Job:
    """A registered job. `schedule` is a cron expression in UTC; `sql` its SQL entry point;
    `options` the typed options its parameters are parsed into (before anything runs)."""

    name: str
    schedule: str
    description: str
    fn: JobFunction = field(repr=False)
    sql: str | None = None
    options: type[Options] = NoOptions

    def parse(self, params: dict[str, Any] | None, label: Callable[[str], str] = param_label) -> Options:
        """The job's options from `--param` values: unknown keys and bad values are refused."""
        return self.options.from_params(params, label=label)


@dataclass(frozen=True)
class JobInfo:
    name: str
    schedule: str
    description: str
    last_run: datetime | None
    last_status: str | None
    sql: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "schedule": self.schedule, "description": self.description,
            "last_run": self.last_run.isoformat() if self.last_run else None, "last_status": self.last_status,
            "sql": self.sql,
        }


@dataclass(frozen=True)
class JobRun:
    id: int
    job: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "job": self.job, "status": self.status, "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": self.seconds, "result": self.result, "error": self.error,
        }


class JobBusy(TrackschemaError):
    """Another run of the same job holds its lock."""


class JobFailed(TrackschemaError):
    """The job raised; the failure is recorded in trackschema.job_runs. Exit code 1."""

    exit_code = 1


_REGISTRY: dict[str, Job] = {}
_loaded = False


def job(name: str, *, schedule: str, description: str, options: type[Options] = NoOptions,
        procedure: str | None = None, procedure_args: Sequence[str] = ()) -> Callable[[JobFunction], JobFunction]:
    """Register `fn(conn, options) -> result dict` as job `name`; `options` is the typed
    options class its parameters are parsed into (`NoOptions`: it takes none).

    `conn` is an autocommit connection: the job commits what it does in its own
    transactions (batch by batch where it moves many rows). `schedule` must be a
    five-field cron expression (UTC). A job that also runs as a SQL procedure names it in
    `procedure`: its SQL entry point (what pg_cron runs, see the module docstring) is
    rendered by `sql_entry_point` from the declared defaults of `procedure_args`, so a
    changed default reaches pg_cron too. A bad schedule fails at import, not at 2 a.m.
    """
    check_schedule(schedule)
    entry = sql_entry_point(procedure, options(), procedure_args) if procedure else None

    def register(fn: JobFunction) -> JobFunction:
        _REGISTRY[name] = Job(name, schedule, description, fn, entry, options)
        return fn

    return register


def sql_entry_point(procedure: str, options: Options, fields: Sequence[str] = ()) -> str:
    """`CALL "schema"."procedure"(v1, ...)` with the values of `fields` in `options`, in
    order: None as NULL, a `Duration` as `make_interval(secs => n)`, others as literals.
    Fields must be declared options: a misspelt one fails at import."""
    declared = options.declared()
    args = []
    for name in fields:
        if name not in declared:
            raise TypeError(f"{type(options).__name__} declares no option {name!r}")
        value = getattr(options, name)
        if value is not None and isinstance(declared[name].metadata["kind"], Duration):
            args.append(sql.SQL("make_interval(secs => {})").format(sql.Literal(value)))
        else:
            args.append(sql.Literal(value))
    call = sql.SQL("CALL {}({})").format(sql.Identifier(*procedure.split(".")), sql.SQL(", ").join(args))
    return call.as_string(None)


_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def check_schedule(schedule: str) -> None:
    """Raise ValueError unless `schedule` is five cron fields of numbers, ranges, lists and steps."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"schedule {schedule!r}: write five cron fields (minute hour day month weekday)")
    for text, (low, high) in zip(fields, _CRON_RANGES):
        if not _CRON_FIELD.match(text):
            raise ValueError(f"schedule {schedule!r}: cannot read field {text!r}")
        for number in re.findall(r"(?<!/)\b\d+", text):
            if not low <= int(number) <= high:
                raise ValueError(f"schedule {schedule!r}: {number} is outside {low}-{high}")


def registry() -> dict[str, Job]:
    global _loaded
    if not _loaded:
        for module in JOB_MODULES:
            importlib.import_module(module)
        _loaded = True
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Job:
    """The job `name`, loading only the module that registers it."""
    if name in JOB_HOMES:
        importlib.import_module(JOB_HOMES[name])
    if name not in _REGISTRY:
        raise TrackschemaError(f"unknown job {name!r}: choose one of {', '.join(registry())} (see `trackschema jobs list`)")
    return _REGISTRY[name]


def list_jobs(settings: Settings) -> list[JobInfo]:
    """Every registered job with its last run."""
    with connect(settings.require_url()) as conn:
        rows = conn.execute(
            sql.SQL("SELECT DISTINCT ON (r.job) r.job, r.started_at, {} FROM trackschema.job_runs r ORDER BY r.job, r.started_at DESC").format(
                _SHOWN_STATUS
            )
        ).fetchall()
    last = {row[0]: (row[1], row[2]) for row in rows}
    return [JobInfo(j.name, j.schedule, j.description, *last.get(j.name, (None, None)), j.sql) for j in registry().values()]


HISTORY_LIMIT = Count(1, 100_000)


@dataclass(frozen=True)
class HistoryOptions(Options):
    """`jobs history`."""

    operation = "jobs history"
    limit: int = option(HISTORY_LIMIT, 20, "How many runs.")


def history(settings: Settings, name: str | None = None, limit: int = 20) -> list[JobRun]:
    """The latest `limit` runs (of job `name`), newest first; an abandoned run (killed
    while 'running') shows as 'abandoned'."""
    limit = HISTORY_LIMIT.parse("--limit", limit)
    if name is not None:
        get(name)
    with connect(settings.require_url()) as conn:
        rows = conn.execute(
            sql.SQL("""SELECT r.id, r.job, {}, r.started_at, r.finished_at, r.result, r.error
                  FROM trackschema.job_runs r
                 WHERE %(name)s::text IS NULL OR r.job = %(name)s ORDER BY r.started_at DESC, r.id DESC LIMIT %(limit)s""").format(_SHOWN_STATUS),
            {"name": name, "limit": limit},
        ).fetchall()
    return [JobRun(*row) for row in rows]


def run(settings: Settings, name: str, params: dict[str, Any] | None = None, *,
        label: Callable[[str], str] = param_label) -> JobRun:
    """Run job `name` once, recorded and under its advisory lock.

    Raises `JobBusy` (exit 2) when another run of the job is in progress, and `JobFailed`
    (exit 1) when the job raises; both leave the history consistent. Parameters are
    parsed first: an unknown or bad one is an `InputError` (exit 2) and nothing is recorded.
    """
    spec = get(name)
    options = spec.parse(params, label)
    params = options.to_params()
    with connect(settings.require_url(), application_name=f"trackschema-job:{name}") as conn:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (JOB_LOCK_CLASS, name)).fetchone()
        if not locked or not locked[0]:
            holder = conn.execute(
                """SELECT a.pid, a.application_name, extract(epoch FROM now() - a.backend_start)::int
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                    WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = hashtext(%s)::oid
                      AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())""",
                (JOB_LOCK_CLASS, name),
            ).fetchone()
            who = f"pid {holder[0]} ({holder[1]}, running {holder[2]}s)" if holder else "another session"
            raise JobBusy(f"job {name} is already running in {who}: wait for it to finish")
        try:
            close_abandoned_runs(conn, name)
            run_id = conn.execute(
                "INSERT INTO trackschema.job_runs (job, params) VALUES (%s, %s) RETURNING id", (name, json.dumps(params, default=str))
            ).fetchone()[0]  # type: ignore[index]
            try:
                result = spec.fn(conn, options)
            except TrackschemaError as exc:
                _finish(conn, run_id, "failed", None, str(exc))
                raise
            except Exception as exc:  # noqa: BLE001 - recorded, then reported as one line
                _finish(conn, run_id, "failed", None, f"{type(exc).__name__}: {exc}")
                raise JobFailed(f"job {name} failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
            _finish(conn, run_id, "succeeded", result, None)
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (JOB_LOCK_CLASS, name))
        row = conn.execute(
            "SELECT id, job, status, started_at, finished_at, result, error FROM trackschema.job_runs WHERE id = %s", (run_id,)
        ).fetchone()
    assert row is not None
    return JobRun(*row)


ABANDONED = "abandoned: its session ended before it recorded an outcome (killed, or the connection was lost)"


def close_abandoned_runs(conn: psycopg.Connection, name: str) -> int:
    """Record as failed every 'running' row of job `name`; call it holding the job's lock.

    A run holds the job's advisory lock for as long as its session lives, so while this
    session holds it no other run of the job is alive: a row still 'running' belongs to
    a run whose process was killed (the lock went with its session). Its work is in
    whatever transactions it committed; the next run simply carries on."""
    return conn.execute(
        """UPDATE trackschema.job_runs SET status = 'failed', finished_at = clock_timestamp(),
                  error = %s || ' (noticed by pid ' || pg_backend_pid() || ')'
            WHERE job = %s AND status = 'running'""",
        (ABANDONED, name),
    ).rowcount


# A run shows as running only while its session holds the job's lock; else it was abandoned.
_SHOWN_STATUS = sql.SQL("""CASE WHEN r.status = 'running' AND NOT EXISTS (
                      SELECT 1 FROM pg_locks l
                       WHERE l.locktype = 'advisory' AND l.granted AND l.pid = r.backend_pid
                         AND l.classid = 1953655554 AND l.objid = hashtext(r.job)::oid AND l.objsubid = 2)
                   THEN 'abandoned' ELSE r.status END""")  # 1953655554 = JOB_LOCK_CLASS


def _finish(conn: psycopg.Connection, run_id: int, status: str, result: dict[str, Any] | None, error: str | None) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    conn.execute(
        "UPDATE trackschema.job_runs SET finished_at = clock_timestamp(), status = %s, result = %s, error = %s WHERE id = %s",
        (status, json.dumps(result, default=str) if result is not None else None, error, run_id),
    )
