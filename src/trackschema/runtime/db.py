"""Connections, the migration advisory lock, timeouts and lock-timeout retries.

Two drivers meet here: psycopg 3 directly (jobs, checks, tests) and SQLAlchemy over
psycopg 3 (Alembic). Both talk to the same server with the same URL, normalised by
`settings`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from trackschema.errors import ConnectionFailed, TrackschemaError
from trackschema.runtime.settings import libpq_url, mask_password

# Session-level advisory lock held for the whole of an upgrade or downgrade. A single
# bigint below 2**31 shows up in pg_locks as classid=0, objid=key, objsubid=1.
MIGRATION_LOCK_KEY = 0x74726B01

# SQLSTATEs after which a revision is retried: lock_not_available (lock_timeout) and
# deadlock_detected. A statement_timeout (57014) is not retried: the work is too slow,
# not blocked, and repeating it would only repeat the wait.
RETRYABLE_SQLSTATES = frozenset({"55P03", "40P01"})

T = TypeVar("T")


def connect(url: str, *, autocommit: bool = True, application_name: str = "trackschema", **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection; a failure becomes one line naming the server (password masked)."""
    try:
        return psycopg.connect(
            libpq_url(url), autocommit=autocommit, application_name=application_name, connect_timeout=10, **kwargs
        )
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(connection_failure_message(url, exc)) from exc


def connection_failure_message(url: str, exc: BaseException) -> str:
    """`cannot connect to <masked url>: <first line of the server's reason>`."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    shown = mask_password(url.replace("postgresql+psycopg://", "postgresql://", 1))
    if url and url in reason:  # never echo a password back through the driver's message
        reason = reason.replace(url, shown)
    return f"cannot connect to {shown}: {reason} (check --database-url and that the server is running)"


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, also when wrapped by SQLAlchemy."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        code = getattr(candidate, "sqlstate", None)
        if code:
            return code
    return None


def backoff_delay(attempt: int, base: float, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter: attempt 0 waits up to `base`, then 2x, 4x..."""
    return random.uniform(base / 2, min(cap, base * (2**attempt)))


def retry_on_lock_timeout(fn: Callable[[], T], *, retries: int, base_delay: float, on_retry: Callable[[int, float, BaseException], None] | None = None) -> T:
    """Run `fn`; after a lock timeout or deadlock wait with backoff and run it again.

    `fn` must be safe to repeat: it is expected to roll back its own transaction on
    failure (a failed PostgreSQL transaction leaves nothing behind).
    """
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - filtered by SQLSTATE just below
            if sqlstate(exc) not in RETRYABLE_SQLSTATES or attempt >= retries:
                raise
            delay = backoff_delay(attempt, base_delay)
            if on_retry:
                on_retry(attempt + 1, delay, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class SessionInfo:
    """A backend as pg_stat_activity describes it, for error messages."""

    pid: int
    user: str | None
    application: str | None
    client: str | None
    state: str | None
    xact_seconds: float | None
    query: str | None

    def describe(self) -> str:
        parts = [f"pid {self.pid}"]
        if self.user:
            parts.append(f"user {self.user}")
        if self.application:
            parts.append(f"application {self.application!r}")
        if self.client:
            parts.append(f"from {self.client}")
        if self.state:
            parts.append(self.state)
        if self.xact_seconds is not None:
            parts.append(f"transaction open {self.xact_seconds:.0f}s")
        return ", ".join(parts)


SESSION_COLUMNS = sql.SQL("""
    a.pid, a.usename, a.application_name, host(a.client_addr), a.state,
    extract(epoch FROM now() - a.xact_start)::float8, left(a.query, 200)
""")


def advisory_lock_holders(cursor: Any, key: int = MIGRATION_LOCK_KEY) -> list[SessionInfo]:
    """Sessions holding the session-level advisory lock `key` (a psycopg cursor: also the one under an Alembic connection, whose driver is psycopg 3)."""
    cursor.execute(
        sql.SQL("""SELECT {}
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())""").format(SESSION_COLUMNS),
        (key,),
    )
    return [SessionInfo(*row) for row in cursor.fetchall()]


def oldest_transactions(cursor: Any, limit: int = 3) -> list[SessionInfo]:
    """The other sessions with the oldest open transactions: the usual holders of blocking locks."""
    cursor.execute(
        sql.SQL("""SELECT {}
              FROM pg_stat_activity a
             WHERE a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
               AND a.datname = current_database() AND a.backend_type = 'client backend'
             ORDER BY a.xact_start
             LIMIT %s""").format(SESSION_COLUMNS),
        (limit,),
    )
    return [SessionInfo(*row) for row in cursor.fetchall()]


@contextmanager
def transaction(conn: psycopg.Connection) -> Iterator[psycopg.Cursor]:
    """A cursor inside one transaction: commit on success, roll back on any error."""
    with conn.transaction(), conn.cursor() as cur:
        yield cur


def set_timeouts(cur: psycopg.Cursor, *, lock_timeout: float | None = None, statement_timeout: float | None = None, local: bool = False) -> None:
    """SET lock_timeout / statement_timeout (seconds) for the session, or for the current
    transaction with `local`. The one way timeouts are set online; `timeout_statements`
    is the same as SQL text, for offline `--sql` output and revisions."""
    from trackschema.runtime.settings import pg_interval

    for name, value in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)):
        if value is not None:
            cur.execute("SELECT set_config(%s, %s, %s)", (name, pg_interval(value), local))


def timeout_statements(*, lock_timeout: float | None = None, statement_timeout: float | None = None,
                       local: bool = False) -> list[str]:
    """`SET [LOCAL] lock_timeout = '5000ms'` (and statement_timeout) as SQL text: what
    `set_timeouts` does, for a script or `op.execute`."""
    from trackschema.runtime.settings import pg_interval

    scope = sql.SQL("SET LOCAL") if local else sql.SQL("SET")
    return [
        sql.SQL("{} {} = {}").format(scope, sql.SQL(name), sql.Literal(pg_interval(value))).as_string(None)  # fixed names
        for name, value in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout))
        if value is not None
    ]


def quote_ident(name: str) -> sql.Identifier:
    """The one quoting helper: `table` or `schema.table` as a psycopg.sql identifier, to
    compose into executed SQL (a schema-qualified name splits on the dot)."""
    return sql.Identifier(*name.split("."))


def ident_text(conn: psycopg.Connection, *parts: str) -> str:
    """The quoted identifier made of `parts` as text, for a statement shown to the user
    (an audit's fix) rather than executed."""
    return sql.Identifier(*parts).as_string(conn)


def require_routine(conn: psycopg.Connection, signature: str, *, what: str, revision: str) -> None:
    """Raise a one-line TrackschemaError when the function or procedure `signature`
    (`schema.name(argtype,...)`) is not installed: `what` is not installed here, run
    `trackschema upgrade head` (`revision` brings it). For code that calls into SQL a
    revision installs, run against a database that is behind."""
    row = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (signature,)).fetchone()
    if not row or not row[0]:
        raise TrackschemaError(f"{what} is not installed here: run `trackschema upgrade head` (revision {revision})")
