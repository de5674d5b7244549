"""The rehearsal: the pending revisions run on the scratch database through `alembic/env.py`,
every statement traced (see the package docstring, step 4).

`_Tracer` hooks SQLAlchemy's cursor events on the migrating connection: after a statement in
a revision's transaction (or wrapped in one, in an `autocommit_block()`) it reads that
session's own `pg_locks`; a statement that cannot run in a transaction block is watched from
two more sessions (`_Observer`). `pg_class.relfilenode` before and after says whether a
relation was rewritten. `rehearse` runs it all and turns a failing revision into a
`PlanError` naming the statement.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from trackschema.errors import TrackschemaError
from trackschema.migrations import runner as migrate
from trackschema.migrations.plan.conflicts import MODES, STRENGTH, blocks
from trackschema.migrations.plan.result import LockTaken, PlanError, StatementTrace, first_line
from trackschema.runtime import db
from trackschema.runtime.settings import Settings, libpq_url

# Every relation of the scratch database's own schemas: catalogs, TOAST and temporary schemas
# are left out, and so is alembic_version (Alembic's bookkeeping, written by every revision).
_RELATIONS = """
SELECT c.oid::int8, c.relfilenode::int8, c.oid::regclass::text, c.relkind::text, n.nspname::text, c.relname::text,
       i.indrelid::regclass::text
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
   AND c.relkind IN ('r', 'p', 'i', 'I', 'm', 'S', 'f', 'v') AND c.relname <> 'alembic_version'
"""
_OWN_LOCKS = "SELECT relation::int8, mode FROM pg_catalog.pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted"
# The migrating backend's locks, and whether each relation is there for other sessions to
# use: visible in the catalog and, for an index, live (DROP INDEX CONCURRENTLY's last step
# locks an index no query opens any more).
_LOCKS_OF = """
SELECT l.locktype, l.relation::int8, l.mode, l.granted, l.virtualxid,
       CASE WHEN i.indexrelid IS NOT NULL THEN i.indislive ELSE c.oid IS NOT NULL END
  FROM pg_catalog.pg_locks l
  LEFT JOIN pg_catalog.pg_class c ON c.oid = l.relation
  LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = l.relation
 WHERE l.pid = %s
"""
_OWN_VXID = "SELECT virtualxid FROM pg_catalog.pg_locks WHERE pid = pg_backend_pid() AND locktype = 'virtualxid'"

# Statements that cannot run in a transaction block (or may commit inside): watched from a
# second session instead of wrapped. A word in a comment or a string only means a statement
# is watched rather than wrapped, which is never wrong, only less exact.
_NOT_IN_A_TRANSACTION = re.compile(r"\b(CONCURRENTLY|VACUUM|COMMIT|ROLLBACK|CALL|DATABASE|TABLESPACE|SYSTEM|CLUSTER)\b", re.I)


# pg_class.relkind -> what a LockTaken calls it.
_KINDS = {"r": "table", "p": "partitioned table", "i": "index", "I": "partitioned index", "m": "materialized view",
          "S": "sequence", "f": "foreign table", "v": "view"}


@dataclass(frozen=True)
class _Relation:
    name: str
    filenode: int
    kind: str
    schema: str
    relname: str
    table: str | None


@dataclass
class _Lock:
    relation: _Relation
    mode: str | None
    rewritten: bool


@dataclass
class _Statement:
    """A statement being traced; `held` is filled in at its transaction's COMMIT."""

    revision: str
    index: int
    excerpt: str
    transaction: str
    observed: str
    before: dict[int, _Relation]
    held_before: dict[int, str]
    started: float = 0.0
    overhead_at_start: float = 0.0
    duration: float = 0.0
    held: float | None = None
    locks: list[_Lock] = field(default_factory=list)

    def freeze(self, sizes: dict[tuple[str, str], int | None]) -> StatementTrace:
        held = self.held if self.held is not None else self.duration
        locks = [
            LockTaken(lock.relation.name, _KINDS.get(lock.relation.kind, lock.relation.kind), lock.mode,
                      blocks(lock.mode) if lock.mode else "unknown", lock.rewritten, round(held, 6),
                      sizes.get((lock.relation.schema, lock.relation.relname)), lock.relation.table)
            for lock in self.locks
        ]
        return StatementTrace(self.revision, self.index, self.excerpt, locks, round(self.duration, 6), self.transaction, self.observed)


def _named_in(statement: str, relations: dict[int, _Relation]) -> list[tuple[int, _Relation]]:
    """The tables and materialized views `statement` names (by a word equal to their name),
    and the tables of the indexes it names."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][\w$]*", statement)}
    by_name = {r.name: (oid, r) for oid, r in relations.items()}
    named: dict[int, _Relation] = {}
    for oid, relation in relations.items():
        if relation.relname.lower() not in words:
            continue
        if relation.kind in ("r", "p", "m"):
            named[oid] = relation
        elif relation.table is not None and relation.table in by_name:
            table_oid, table = by_name[relation.table]
            named[table_oid] = table
    return sorted(named.items())


def excerpt(statement: str, limit: int = 110) -> str:
    """The statement on one line without comment lines, at most `limit` characters."""
    lines = [line for line in statement.strip().splitlines() if line.strip() and not line.strip().startswith("--")]
    text = " ".join(" ".join(lines).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Observer:
    """Two more sessions on the scratch database that watch one backend while a statement that
    cannot run in a transaction block runs there.

    The anchor, opened just before the statement starts, holds a REPEATABLE READ snapshot and
    SHARE UPDATE EXCLUSIVE on the tables the statement names (and on the tables of the indexes
    it names). A statement that asks for SHARE UPDATE EXCLUSIVE or stronger on one of them
    (CREATE INDEX / DROP INDEX / DETACH PARTITION CONCURRENTLY, VACUUM, an ALTER TABLE in a
    DO block), or waits for older snapshots (CREATE INDEX / REINDEX CONCURRENTLY), therefore
    waits for the anchor, and is certain to be seen then with what it holds and asks for; the
    anchor lets go as soon as that is seen (after RELEASE_AFTER at most). The poller, in
    autocommit, reads `pg_locks` every POLL seconds with a fresh catalog snapshot: a lock on an
    index that is no longer live (DROP INDEX CONCURRENTLY's last step) is not counted, since no
    query opens such an index any more. A lock taken after the first wait, or on a relation
    the anchor cannot lock (a materialized view: REFRESH ... CONCURRENTLY), and held for less
    than POLL can be missed."""

    POLL = 0.001
    RELEASE_AFTER = 1.0  # never hold the anchor longer, whatever happens

    def __init__(self, url: str) -> None:
        self.url = url
        self.anchor: psycopg.Connection | None = None
        self.poller: psycopg.Connection | None = None
        self.seen: set[tuple[int, str]] = set()
        self.samples = 0
        self.thread: threading.Thread | None = None
        self.done = threading.Event()
        self.released = True
        self.pid = 0
        self.vxid: str | None = None
        self.held: set[int] = set()
        self.since = 0.0

    def start(self, pid: int, hold: Iterable[tuple[int, _Relation]] = ()) -> None:
        if self.anchor is None or self.poller is None:
            self.anchor = db.connect(self.url, application_name="trackschema-plan-anchor")
            self.poller = db.connect(self.url, application_name="trackschema-plan-observer")
        self.pid, self.seen, self.samples, self.held = pid, set(), 0, set()
        self.done = threading.Event()
        self.anchor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        for oid, relation in hold:
            try:
                with self.anchor.transaction():  # a savepoint: a relation LOCK refuses (or autovacuum holds) is just not held
                    self.anchor.execute(sql.SQL("LOCK TABLE ONLY {} IN SHARE UPDATE EXCLUSIVE MODE NOWAIT").format(
                        sql.Identifier(relation.schema, relation.relname)))
                self.held.add(oid)
            except psycopg.Error:
                pass
        row = self.anchor.execute(_OWN_VXID).fetchone()  # takes the snapshot, before the statement starts
        self.vxid = row[0] if row else None
        self.released = False
        self.since = time.perf_counter()
        self.thread = threading.Thread(target=self._watch, name="trackschema-plan-observer", daemon=True)
        self.thread.start()

    def _release(self) -> None:
        if not self.released and self.anchor is not None:
            self.anchor.execute("COMMIT")
            self.released = True

    def _watch(self) -> None:
        """Poll until stopped; release the anchor once the backend waits for it."""
        assert self.poller is not None
        try:
            while not self.done.is_set():
                waits_for_us = False
                for locktype, relation, mode, granted, vxid, live in self.poller.execute(_LOCKS_OF, (self.pid,)).fetchall():
                    if not granted:
                        waits_for_us = waits_for_us or (locktype == "virtualxid" and vxid == self.vxid) or relation in self.held
                    if locktype == "relation" and relation is not None and live:
                        self.seen.add((relation, mode))  # held, or asked for: held as soon as it is granted
                self.samples += 1
                if waits_for_us or time.perf_counter() - self.since > self.RELEASE_AFTER:
                    self._release()
                self.done.wait(self.POLL)
        finally:
            self._release()

    def stop(self) -> set[tuple[int, str]]:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        self._release()
        return self.seen

    def close(self) -> None:
        if self.thread is not None:
            self.stop()
        for conn in (self.anchor, self.poller):
            if conn is not None:
                conn.close()
        self.anchor = self.poller = None


class _Tracer:
    """SQLAlchemy event handlers on the scratch connection that trace every statement a
    revision's upgrade() runs (and nothing env.py or Alembic's bookkeeping runs)."""

    def __init__(self, scratch_url: str) -> None:
        self.observer = _Observer(scratch_url)
        self.revision: str | None = None
        self.statements: dict[str, list[_Statement]] = {}
        self.seconds: dict[str, float] = {}
        self.open: list[_Statement] = []  # statements of the open transaction: their locks are held until its COMMIT
        self.baseline: dict[int, _Relation] | None = None  # relations when the open transaction began
        self.current: _Statement | None = None
        self.failed: _Statement | None = None
        self.overhead = 0.0

    def attach(self, connection: Connection) -> None:
        event.listen(connection, "before_cursor_execute", self.before)
        event.listen(connection, "after_cursor_execute", self.after)
        event.listen(connection, "commit", self.commit)
        event.listen(connection, "rollback", self.rollback)

    def wrap(self, revision: str, upgrade: Callable[..., Any]) -> Callable[..., Any]:
        """The revision's upgrade(), tracing the statements it runs. A retried revision (after
        a lock timeout) starts its trace again."""

        def traced(*args: Any, **kwargs: Any) -> Any:
            self.revision, self.statements[revision] = revision, []
            started = time.perf_counter()
            try:
                return upgrade(*args, **kwargs)
            finally:
                self.seconds[revision] = time.perf_counter() - started
                self.revision = None

        traced.__name__ = getattr(upgrade, "__name__", "upgrade")
        traced.__doc__ = getattr(upgrade, "__doc__", None)
        return traced

    @staticmethod
    def _relations(raw: psycopg.Connection) -> dict[int, _Relation]:
        return {oid: _Relation(name, filenode, kind, schema, relname, table)
                for oid, filenode, name, kind, schema, relname, table in raw.execute(_RELATIONS).fetchall()}

    @staticmethod
    def _strongest(locks: Iterable[tuple[int, str]]) -> dict[int, str]:
        strongest: dict[int, str] = {}
        for oid, mode in locks:
            name = MODES.get(mode)
            if name is not None and (oid not in strongest or STRENGTH[name] > STRENGTH[strongest[oid]]):
                strongest[oid] = name
        return strongest

    def before(self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self.revision is None:
            return
        began = time.perf_counter()
        raw = conn.connection.dbapi_connection
        assert raw is not None
        index = len(self.statements[self.revision]) + 1
        before = self._relations(raw)
        if not raw.autocommit:
            if self.baseline is None:
                self.baseline = before
            held = self._strongest(raw.execute(_OWN_LOCKS).fetchall())
            st = _Statement(self.revision, index, excerpt(statement), "revision", "same session", before, held)
        elif not _NOT_IN_A_TRANSACTION.search(statement):
            raw.execute("BEGIN")  # the implicit transaction it would have had, made explicit to read pg_locks in it
            st = _Statement(self.revision, index, excerpt(statement), "autocommit", "same session", before, {})
        else:
            self.observer.start(raw.info.backend_pid, _named_in(statement, before))
            st = _Statement(self.revision, index, excerpt(statement), "autocommit", "second session", before, {})
        self.overhead += time.perf_counter() - began
        st.overhead_at_start = self.overhead
        self.current = st
        st.started = time.perf_counter()

    def after(self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        st, self.current = self.current, None
        if st is None:
            return
        ended = time.perf_counter()
        st.duration = ended - st.started
        raw = conn.connection.dbapi_connection
        assert raw is not None
        if st.observed == "second session":
            taken = self._strongest(self.observer.stop())
        else:
            taken = self._strongest(raw.execute(_OWN_LOCKS).fetchall())
        after = self._relations(raw)
        existing = self.baseline if st.transaction == "revision" and self.baseline is not None else st.before
        for oid, relation in st.before.items():
            if oid not in existing:
                continue  # created earlier in this transaction: nobody else sees it yet
            mode = taken.get(oid)
            new_mode = mode if mode is not None and (oid not in st.held_before or STRENGTH[mode] > STRENGTH[st.held_before[oid]]) else None
            moved = oid in after and relation.filenode != 0 and after[oid].filenode not in (0, relation.filenode)
            if new_mode is not None or moved:
                st.locks.append(_Lock(relation, new_mode if new_mode is not None else mode, moved))
        st.locks.sort(key=lambda lock: (-(STRENGTH[lock.mode] if lock.mode else -1), lock.relation.kind in ("i", "I"), lock.relation.name))
        if st.transaction == "revision":
            self.open.append(st)
        else:
            if st.observed == "same session":
                raw.execute("COMMIT")
            st.held = st.duration  # an autocommit statement's locks go with its end
        self.statements[st.revision].append(st)
        self.overhead += time.perf_counter() - ended

    def commit(self, conn: Connection) -> None:
        raw = conn.connection.dbapi_connection
        if raw is None or raw.autocommit:
            return  # Alembic's stand-in transaction around an autocommit block: nothing to commit
        now = time.perf_counter()
        for st in self.open:
            st.held = now - st.started - (self.overhead - st.overhead_at_start)
        self.open, self.baseline = [], None

    def rollback(self, conn: Connection) -> None:
        self.open, self.baseline = [], None

    def error(self, context: Any) -> None:
        """A statement failed: end the wrapper transaction or the observer, remember where."""
        st, self.current = self.current, None
        if st is None:
            return
        self.failed = st
        if st.observed == "second session":
            self.observer.stop()
        elif st.transaction == "autocommit":
            raw = context.connection.connection.dbapi_connection if context.connection is not None else None
            if raw is not None:
                raw.execute("ROLLBACK")


def rehearse(scratch_settings: Settings, target: str, extra_version_locations: list[str] | None) -> _Tracer:
    """Run the pending revisions on the scratch database through env.py, traced."""
    url = scratch_settings.require_url()
    tracer = _Tracer(libpq_url(url))
    cfg = migrate.alembic_config(scratch_settings, extra_version_locations=extra_version_locations)
    script = ScriptDirectory.from_config(cfg)
    engine = create_engine(url, poolclass=NullPool, connect_args={"application_name": "trackschema-plan", "connect_timeout": 10})
    event.listen(engine, "handle_error", tracer.error)

    def steps(rev: Any, context: Any) -> Any:
        found = script._upgrade_revs(target, rev)
        for step in found:
            step.migration_fn = tracer.wrap(step.revision.revision, step.migration_fn)
        return found

    try:
        with engine.connect() as connection:
            tracer.attach(connection)
            cfg.attributes["connection"] = connection
            try:
                with migrate.alembic_errors(scratch_settings):
                    with EnvironmentContext(cfg, script, fn=steps, as_sql=False, starting_rev=None, destination_rev=target, tag=None):
                        script.run_env()
            except TrackschemaError as exc:
                failed = tracer.failed
                if failed is None:
                    raise
                message = exc.args[0] if exc.args else str(exc)
                cause = exc.__cause__
                if isinstance(cause, DBAPIError):
                    message = first_line(cause.orig or cause)
                raise PlanError(
                    f"revision {failed.revision} failed in the rehearsal at statement #{failed.index} ({failed.excerpt}): "
                    f"{message}; it would fail on the target too (nothing was changed there)"
                ) from exc
    finally:
        tracer.observer.close()
        engine.dispose()
    return tracer
