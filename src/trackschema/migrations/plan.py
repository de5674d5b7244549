"""`trackschema plan`: rehearse the pending revisions in a scratch database and report, statement
by statement, the table locks each one takes, how long it holds them, whether it rewrites a
table or index, and what those locks block for other sessions.

How it works:

1. The target is only read: its current revision (alembic_version), its catalog (table sizes,
   columns) and a bounded sample of rows, on a connection with
   `default_transaction_read_only = on`, in one REPEATABLE READ READ ONLY transaction, with
   the migration `lock_timeout` so a sample read never queues behind a DDL lock.
2. A scratch database is created on the same server (or on `--scratch-url`) and migrated with
   `upgrade` to the target's current revision: the schema the revisions build, which is not
   necessarily every object a person added by hand on the target.
3. Up to `sample_rows` rows of every table the pending revisions' SQL names (their offline
   `--sql` rendering) are copied into it, plus the rows those rows reference through foreign
   keys (so a VALIDATE or a gate sees consistent data); triggers are off while loading when
   the role may set `session_replication_role`.
4. The pending revisions run there, through `alembic/env.py` like `upgrade` (advisory lock,
   timeouts, one transaction per revision), on a connection whose statements are observed
   with SQLAlchemy cursor events:
   - in a revision's transaction, after each statement the same session reads `pg_locks` for
     its own backend: a lock taken in a transaction is held until COMMIT, so what is there is
     exactly what the statement took. A lock counts from the statement that first took that
     mode (or a stronger one) on the relation until the transaction's COMMIT;
   - in an `autocommit_block()`, a statement that may run in a transaction block is wrapped in
     one (BEGIN, statement, read `pg_locks`, COMMIT): the same locks, held for the same time,
     as the implicit transaction it would have had;
   - a statement that may not (`CONCURRENTLY`, `VACUUM`, `CALL`, a `DO` block that commits) is
     watched from other sessions (`_Observer`): one polls `pg_locks` for the migrating backend
     while it runs; another, opened just before, holds a snapshot and SHARE UPDATE EXCLUSIVE
     on the tables the statement names, so a statement that asks for such a lock or waits for
     older snapshots (CREATE INDEX / DROP INDEX / DETACH PARTITION CONCURRENTLY, VACUUM) is
     certain to be seen while it waits for it; it lets go as soon as the backend is seen
     waiting. Such a lock is held at most for the statement's duration, which is what is
     reported.
   `pg_class.relfilenode` of every relation is compared before and after each statement: a
   change is a rewrite. Locks on relations created in the same transaction are left out (no
   other session can see those yet), so are catalogs and alembic_version.
5. The scratch database is dropped at the end, also when anything fails.

Durations are measured on the sample, not on the target's data: they show the shape (a lock
held across a slow statement, until the commit), and `target_bytes` says how big the relation
is on the target. Row locks taken by UPDATE/DELETE are not table locks and are not reported.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

import psycopg
from alembic import command
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from trackschema.errors import ConfigurationError, RevisionError, TrackschemaError
from trackschema.migrations import runner as migrate
from trackschema.operations.inputs import Count, InputError, Names
from trackschema.operations.options import Options, option
from trackschema.runtime import db, scratch
from trackschema.runtime.settings import Settings, libpq_url, mask_password, sqlalchemy_url

# --- lock modes and what they block ------------------------------------------------------

# pg_locks.mode -> the name PostgreSQL's documentation uses, weakest first (PostgreSQL's order).
MODES: dict[str, str] = {
    "AccessShareLock": "ACCESS SHARE",
    "RowShareLock": "ROW SHARE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}
STRENGTH: dict[str, int] = {name: n for n, name in enumerate(MODES.values())}

# "Conflicting Lock Modes" (PostgreSQL 15, 13.3.1 Table-Level Locks). tests/migrations/test_plan.py
# checks every row against the server: a session holding the mode, another one reading/writing.
CONFLICTS: dict[str, frozenset[str]] = {
    "ACCESS SHARE": frozenset({"ACCESS EXCLUSIVE"}),
    "ROW SHARE": frozenset({"EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "ROW EXCLUSIVE": frozenset({"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE UPDATE EXCLUSIVE": frozenset({"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE": frozenset({"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE ROW EXCLUSIVE": frozenset({"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "EXCLUSIVE": frozenset({"ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "ACCESS EXCLUSIVE": frozenset(MODES.values()),
}
READ_MODE = "ACCESS SHARE"  # what a plain SELECT takes
WRITE_MODE = "ROW EXCLUSIVE"  # what INSERT, UPDATE, DELETE, MERGE take


def blocks(mode: str) -> str:
    """What a lock of `mode` blocks for other sessions: "reads and writes", "writes" or
    "nothing" (plain reads take ACCESS SHARE, writes ROW EXCLUSIVE). EXCLUSIVE blocks writes
    and SELECT ... FOR UPDATE/SHARE, not plain reads; SHARE UPDATE EXCLUSIVE blocks only other
    DDL, VACUUM and ANALYZE."""
    conflicts = CONFLICTS[mode]
    reads, writes = READ_MODE in conflicts, WRITE_MODE in conflicts
    if reads and writes:
        return "reads and writes"
    return "reads" if reads else "writes" if writes else "nothing"


def mode_word(mode: str) -> str:
    """`ACCESS EXCLUSIVE` -> `access-exclusive`, as `--fail-on` spells it."""
    return mode.lower().replace(" ", "-")


FAIL_ON_CHOICES: tuple[str, ...] = tuple(mode_word(m) for m in reversed(MODES.values())) + ("rewrite", "blocks-reads", "blocks-writes")
_SEVERITY = {"reads and writes": 3, "reads": 2, "writes": 1, "nothing": 0}
_KINDS = {"r": "table", "p": "partitioned table", "i": "index", "I": "partitioned index", "m": "materialized view",
          "S": "sequence", "f": "foreign table", "v": "view"}


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerUrl:
    """A PostgreSQL URL; a refusal masks its password."""

    def parse(self, option_name: str, value: Any) -> str:
        text = str(value).strip()
        try:
            sqlalchemy_url(text)
        except ConfigurationError as exc:
            raise InputError(f"bad {option_name}: {exc}") from None
        return text


@dataclass(frozen=True)
class PlanOptions(Options):
    """`plan`: what fails the run (for CI), how many rows to sample, where the scratch database goes."""

    operation = "plan"
    fail_on: tuple[str, ...] | None = option(
        Names(FAIL_ON_CHOICES), None,
        "Exit 1 when a statement takes one of these lock modes on an existing relation, rewrites one, or blocks "
        f"reads/writes; comma-separated, among {', '.join(FAIL_ON_CHOICES)}.",
    )
    sample_rows: int = option(Count(0, 100_000), 100, "Rows copied from the target per table the pending revisions name (plus the rows those reference).")
    scratch_url: str | None = option(ServerUrl(), None, "A server where plan may create its scratch database (default: the target's server).")


class PlanError(TrackschemaError):
    """The rehearsal could not run, or a revision failed in it (exit 1: it would fail on the target too)."""

    exit_code = 1


class ScratchRefused(TrackschemaError):
    """No scratch database can be created where plan was told to (exit 2)."""


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockTaken:
    """A table-level lock a statement took on a relation that existed before its transaction
    (the strongest new mode per relation), or a rewrite of one. `held_seconds` runs from the
    statement's start to its transaction's COMMIT (tracing overhead taken out); `target_bytes`
    is the relation's size on the target (relpages from its catalog; None when unknown or not
    there); `table` is an index's table."""

    relation: str
    kind: str
    mode: str | None
    blocks: str
    rewritten: bool
    held_seconds: float
    target_bytes: int | None = None
    table: str | None = None

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StatementTrace:
    """One SQL statement a revision ran in the scratch database. `transaction` is "revision"
    (the revision's transaction) or "autocommit" (an `autocommit_block()`); `observed` says how
    its locks were seen ("same session", or "second session" for statements that cannot run in
    a transaction block)."""

    revision: str
    index: int
    sql_excerpt: str
    locks: list[LockTaken]
    duration: float
    transaction: str
    observed: str

    @property
    def blocks(self) -> str:
        """The worst of its locks' `blocks`."""
        return max((lock.blocks for lock in self.locks), key=lambda b: _SEVERITY.get(b, 0), default="nothing")

    def to_dict(self) -> dict[str, object]:
        return {
            "revision": self.revision, "index": self.index, "sql": self.sql_excerpt, "duration": self.duration,
            "transaction": self.transaction, "observed": self.observed, "blocks": self.blocks,
            "locks": [lock.to_dict() for lock in self.locks],
        }


@dataclass(frozen=True)
class RevisionPlan:
    revision: str
    description: str
    statements: list[StatementTrace]
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"revision": self.revision, "description": self.description, "seconds": self.seconds,
                "statements": [s.to_dict() for s in self.statements]}


@dataclass(frozen=True)
class PlanResult:
    """What `plan` found: per pending revision (oldest first), its statements and their locks."""

    database: str
    current: list[str]
    target: str
    revisions: list[RevisionPlan]
    scratch: str | None = None  # the scratch database's URL (password masked); dropped at the end
    sample_rows: int = 0
    sampled: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    fail_on: tuple[str, ...] = ()

    @property
    def pending(self) -> list[str]:
        return [r.revision for r in self.revisions]

    @property
    def failing(self) -> list["FailOnHit"]:
        """The locks `fail_on` names (see `failing`)."""
        return failing(self, self.fail_on)

    def statements(self) -> Iterable[StatementTrace]:
        for revision in self.revisions:
            yield from revision.statements

    def to_dict(self) -> dict[str, object]:
        return {
            "database": self.database, "current": self.current, "target": self.target, "pending": self.pending,
            "scratch": self.scratch, "sample_rows": self.sample_rows, "sampled": self.sampled,
            "warnings": self.warnings, "seconds": self.seconds,
            "revisions": [r.to_dict() for r in self.revisions],
            "fail_on": list(self.fail_on), "failing": [hit.to_dict() for hit in self.failing],
        }


@dataclass(frozen=True)
class FailOnHit:
    """A statement with locks that `--fail-on` names: which revision and statement, the
    relations, and why (the modes, `rewrite`, `blocks reads`, `blocks writes`)."""

    revision: str
    index: int
    sql_excerpt: str
    relations: tuple[str, ...]
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.revision} #{self.index} {', '.join(self.reasons)} on {', '.join(self.relations)} ({self.sql_excerpt})"

    def to_dict(self) -> dict[str, object]:
        return {"revision": self.revision, "index": self.index, "sql": self.sql_excerpt,
                "relations": list(self.relations), "reasons": list(self.reasons)}


def failing(result: PlanResult, fail_on: Iterable[str] | None) -> list[FailOnHit]:
    """The statements whose locks `fail_on` (words of FAIL_ON_CHOICES) names: a mode matches
    exactly, `rewrite` a rewritten relation, `blocks-reads`/`blocks-writes` what a lock blocks."""
    wanted = set(fail_on or ())
    hits = []
    for statement in result.statements():
        relations: list[str] = []
        reasons: list[str] = []
        for lock in statement.locks:
            found = []
            if lock.mode is not None and mode_word(lock.mode) in wanted:
                found.append(lock.mode)
            if lock.rewritten and "rewrite" in wanted:
                found.append("rewrite")
            if "blocks-reads" in wanted and "reads" in lock.blocks:
                found.append("blocks reads")
            if "blocks-writes" in wanted and "writes" in lock.blocks:
                found.append("blocks writes")
            if found:
                relations.append(lock.relation)
                reasons.extend(r for r in found if r not in reasons)
        if relations:
            hits.append(FailOnHit(statement.revision, statement.index, statement.sql_excerpt, tuple(relations), tuple(reasons)))
    return hits


# --- the plan ------------------------------------------------------------------------------------


def plan(settings: Settings, target: str = "head", options: PlanOptions | None = None, *,
         extra_version_locations: list[str] | None = None) -> PlanResult:
    """Rehearse the revisions from the target's current revision up to `target` in a scratch
    database and return what each statement locked (see the module docstring). Nothing is
    written to the target. With nothing pending, no scratch database is made."""
    options = options if options is not None else PlanOptions()
    started = time.perf_counter()
    try:
        migrate.check_target("upgrade", target, sql=False, extra_version_locations=extra_version_locations)
    except RevisionError as exc:  # the same targets as `upgrade`, named as this command
        message = str(exc)
        raise RevisionError("plan " + message[len("upgrade "):] if message.startswith("upgrade ") else message) from None
    settings.require_url()
    current = migrate.current_heads(settings)
    cfg = migrate.alembic_config(settings, extra_version_locations=extra_version_locations)
    script = ScriptDirectory.from_config(cfg)
    with migrate.alembic_errors(settings):
        steps = script._upgrade_revs(target, tuple(current))  # what `upgrade` would run, oldest first
    pending = [step.revision for step in steps]
    if not pending:
        return PlanResult(settings.display_url, current, target, [], seconds={"total": time.perf_counter() - started},
                          fail_on=options.fail_on or ())

    server = options.scratch_url or settings.require_url()
    name = f"trackschema_plan_{os.getpid()}_{secrets.token_hex(3)}"
    _create_scratch(server, name)
    scratch_url = scratch.database_url(server, name)
    scratch_settings = dataclasses.replace(settings, database_url=scratch_url)
    seconds: dict[str, float] = {}
    try:
        mark = time.perf_counter()
        for head in current:
            migrate.upgrade(scratch_settings, head, extra_version_locations=extra_version_locations)
        seconds["build"] = time.perf_counter() - mark
        mark = time.perf_counter()
        warnings: list[str] = []
        sampled: dict[str, int] = {}
        if options.sample_rows > 0:
            named = _named_tables(current, pending[-1].revision, extra_version_locations)
            sampled = _copy_sample(settings, scratch_url, named, options.sample_rows, warnings)
        seconds["sample"] = time.perf_counter() - mark
        mark = time.perf_counter()
        tracer = _rehearse(scratch_settings, target, extra_version_locations)
        seconds["rehearsal"] = time.perf_counter() - mark
        sizes = _target_sizes(settings)
    finally:
        scratch.drop_database(server, name)
    revisions = [
        RevisionPlan(rev.revision, (rev.doc or "").strip().splitlines()[0] if rev.doc else "",
                     [s.freeze(sizes) for s in tracer.statements.get(rev.revision, [])], tracer.seconds.get(rev.revision, 0.0))
        for rev in pending
    ]
    seconds["total"] = time.perf_counter() - started
    return PlanResult(settings.display_url, current, target, revisions, mask_password(scratch_url), options.sample_rows,
                      sampled, warnings, seconds, options.fail_on or ())


def _display_server(url: str) -> str:
    """The server of `url` (its maintenance connection URL), password masked."""
    return mask_password(libpq_url(url))


def _create_scratch(server: str, name: str) -> None:
    """CREATE DATABASE `name` on `server`, or a one-line refusal pointing at --scratch-url."""
    hint = ("give --scratch-url with a server where it may (e.g. `trackschema sandbox start`, then "
            "--scratch-url \"$(trackschema sandbox url)\")")
    with scratch.admin(server) as conn:
        row = conn.execute("SELECT current_user, rolsuper OR rolcreatedb FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()
        if row is None or not row[1]:
            who = row[0] if row else "this role"
            raise ScratchRefused(f"plan rehearses in a scratch database, and {who} may not create databases on {_display_server(server)}: {hint}")
        try:
            scratch.create(conn, name)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ScratchRefused(f"cannot create a scratch database on {_display_server(server)} ({exc.diag.message_primary}): {hint}") from None


# --- which tables to sample, and copying the sample ------------------------------------------------


def _named_tables(current: list[str], last: str, extra_version_locations: list[str] | None) -> str | None:
    """The pending revisions' offline SQL (`upgrade --sql FROM:TO`), whose words say which
    tables they touch; None when it cannot be rendered (then every table is sampled)."""
    start = current[0] if len(current) == 1 else "base" if not current else None
    if start is None:
        return None
    buffer = io.StringIO()
    cfg = migrate.alembic_config(Settings(), output=buffer, extra_version_locations=extra_version_locations)
    try:
        command.upgrade(cfg, f"{start}:{last}", sql=True)
    except Exception:  # noqa: BLE001 - a revision that cannot render offline: sample every table
        return None
    return buffer.getvalue()


@dataclass
class _Table:
    schema: str
    name: str
    columns: list[str] = field(default_factory=list)  # copied columns, scratch order
    types: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (type schema, type name) on the target
    rows: list[tuple[str | None, ...]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


@dataclass(frozen=True)
class _ForeignKey:
    child: tuple[str, str]
    parent: tuple[str, str]
    child_columns: tuple[str, ...]
    parent_columns: tuple[str, ...]


_SCRATCH_TABLES = """
SELECT n.nspname, c.relname,
       array(SELECT a.attname::text FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              ORDER BY a.attnum),
       (SELECT rn.nspname FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
         WHERE r.oid = coalesce(pg_catalog.pg_partition_root(c.oid), c.oid)),
       (SELECT r.relname FROM pg_catalog.pg_class r WHERE r.oid = coalesce(pg_catalog.pg_partition_root(c.oid), c.oid))
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""

_FOREIGN_KEYS = """
SELECT cn.nspname, cc.relname, pn.nspname, pc.relname,
       array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.i),
       array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.i)
  FROM pg_catalog.pg_constraint con
  JOIN pg_catalog.pg_class cc ON cc.oid = con.conrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace
  JOIN pg_catalog.pg_class pc ON pc.oid = con.confrelid JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0
"""

_TARGET_COLUMNS = """
SELECT a.attname::text, tn.nspname, t.typname
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
 WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
"""

# Estimated rows of a table and, for a partitioned one, of its partitions (catalog only).
_TARGET_ROWS = """
WITH RECURSIVE tree(oid) AS (
    SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = %s AND c.relname = %s
    UNION ALL
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.oid
"""


def _copy_sample(settings: Settings, scratch_url: str, named: str | None, limit: int, warnings: list[str]) -> dict[str, int]:
    """Copy up to `limit` rows of each table `named` mentions (every table when None) from the
    target into the scratch database, plus the rows they reference (foreign keys, followed to
    the referenced tables' own references). Reads run on the target in one read-only
    REPEATABLE READ transaction; a table that cannot be read or loaded is skipped with a
    warning. Returns rows copied per table."""
    with db.connect(scratch_url, application_name="trackschema-plan") as conn:
        tables: dict[tuple[str, str], _Table] = {}
        roots: dict[tuple[str, str], tuple[str, str]] = {}
        for schema, name, columns, root_schema, root_name in conn.execute(_SCRATCH_TABLES).fetchall():
            if (root_schema, root_name) != (schema, name):
                roots[(schema, name)] = (root_schema, root_name)  # a partition: its root is sampled
                continue
            tables[(schema, name)] = _Table(schema, name, list(columns))
        fks = [_ForeignKey((r[0], r[1]), (r[2], r[3]), tuple(r[4]), tuple(r[5])) for r in conn.execute(_FOREIGN_KEYS).fetchall()]
    wanted: set[tuple[str, str]] = set()
    for key in list(tables) + list(roots):
        if named is None or re.search(rf"(?<![\w$]){re.escape(key[1])}(?![\w$])", named, re.I):
            wanted.add(roots.get(key, key))
    if not wanted:
        return {}
    with db.connect(settings.require_url(), application_name="trackschema-plan") as target:
        target.execute("SET default_transaction_read_only = on")
        db.set_timeouts(target.cursor(), lock_timeout=settings.lock_timeout, statement_timeout=min(settings.statement_timeout, 120.0))
        target.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        target.read_only = True
        with target.transaction():
            for key in sorted(wanted):
                _read_sample(target, tables[key], limit, warnings)
            _follow_references(target, tables, fks, {k for k in wanted if tables[k].rows}, warnings)
    loaded = [t for t in tables.values() if t.rows]
    return _load(scratch_url, loaded, fks, warnings)


def _fit_columns(target: psycopg.Connection, table: _Table) -> bool:
    """Keep the scratch columns the target also has (and their target types); False when the
    table is not on the target."""
    if table.types:
        return True
    found = {name: (tschema, tname) for name, tschema, tname in target.execute(_TARGET_COLUMNS, (table.schema, table.name)).fetchall()}
    if not found:
        return False
    table.columns = [c for c in table.columns if c in found]
    table.types = {c: found[c] for c in table.columns}
    return bool(table.columns)


def _as_text(columns: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)


def _read_sample(target: psycopg.Connection, table: _Table, limit: int, warnings: list[str]) -> None:
    """Up to `limit` rows of `table`: TABLESAMPLE SYSTEM when the catalog estimates more than
    four times that many (a few pages instead of a scan), else the first `limit` rows."""
    try:
        with target.transaction():
            if not _fit_columns(target, table):
                return
            row = target.execute(_TARGET_ROWS, (table.schema, table.name)).fetchone()
            estimate = float(row[0]) if row else 0.0
            sample = sql.SQL("")
            if estimate > 4 * limit:
                sample = sql.SQL("TABLESAMPLE SYSTEM ({})").format(sql.Literal(min(100.0, 400.0 * limit / estimate)))
            query = sql.SQL("SELECT {} FROM {} {} LIMIT {}").format(_as_text(table.columns), table.ident, sample, sql.Literal(limit))
            table.rows = [tuple(r) for r in target.execute(query).fetchall()]
    except psycopg.Error as exc:
        warnings.append(f"sample of {table.label} skipped: {_first_line(exc)}")


def _follow_references(target: psycopg.Connection, tables: dict[tuple[str, str], _Table], fks: list[_ForeignKey],
                       changed: set[tuple[str, str]], warnings: list[str]) -> None:
    """Fetch the rows the copied rows reference, level by level (at most 20 levels)."""
    for _level in range(20):
        if not changed:
            return
        grew: set[tuple[str, str]] = set()
        for fk in fks:
            child, parent = tables.get(fk.child), tables.get(fk.parent)
            if fk.child not in changed or child is None or parent is None or not child.rows:
                continue
            if not all(c in child.columns for c in fk.child_columns):
                continue
            try:
                with target.transaction():
                    if not _fit_columns(target, parent) or not all(c in parent.columns for c in fk.parent_columns):
                        continue
                    at = [child.columns.index(c) for c in fk.child_columns]
                    wanted = {tuple(r[i] for i in at) for r in child.rows}
                    wanted = {k for k in wanted if None not in k}
                    have_at = [parent.columns.index(c) for c in fk.parent_columns]
                    missing = sorted(wanted - {tuple(r[i] for i in have_at) for r in parent.rows})
                    if not missing:
                        continue
                    names = [sql.Identifier(f"k{i}") for i in range(len(fk.parent_columns))]
                    keys = sql.SQL(", ").join(
                        sql.SQL("{}::{}").format(n, sql.Identifier(*parent.types[c])) for n, c in zip(names, fk.parent_columns)
                    )
                    query = sql.SQL("SELECT {} FROM {} WHERE ({}) IN (SELECT {} FROM unnest({}) AS u({}))").format(
                        _as_text(parent.columns), parent.ident, sql.SQL(", ").join(sql.Identifier(c) for c in fk.parent_columns),
                        keys, sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in names), sql.SQL(", ").join(names),
                    )
                    columns = [list(col) for col in zip(*missing)]
                    fetched = [tuple(r) for r in target.execute(query, columns).fetchall()]
            except psycopg.Error as exc:
                warnings.append(f"rows of {parent.label} referenced by the sample of {child.label} skipped: {_first_line(exc)}")
                continue
            known = set(parent.rows)
            new = [r for r in fetched if r not in known]
            if new:
                parent.rows.extend(new)
                grew.add(fk.parent)
        changed = grew


def _load(scratch_url: str, loaded: list[_Table], fks: list[_ForeignKey], warnings: list[str]) -> dict[str, int]:
    """Copy the sampled rows into the scratch database, referenced tables first, with triggers
    (and so foreign-key checks and the tracking triggers) off when the role may set
    `session_replication_role`. Rows go through a temporary table and INSERT ... ON CONFLICT
    DO NOTHING, so a row the revisions already seeded (a singleton settings row) stays as the
    revisions made it. Then each serial/identity sequence moves past the copied ids. Returns
    the rows copied per table (a table that got none is left out)."""
    order = TopologicalSorter({(t.schema, t.name): set() for t in loaded})
    names = {(t.schema, t.name) for t in loaded}
    for fk in fks:
        if fk.child in names and fk.parent in names and fk.child != fk.parent:
            order.add(fk.child, fk.parent)
    by_key = {(t.schema, t.name): t for t in loaded}
    try:
        ordered = [by_key[k] for k in order.static_order()]
    except CycleError:
        ordered = loaded
    counts: dict[str, int] = {}
    with db.connect(scratch_url, application_name="trackschema-plan") as conn:
        try:
            conn.execute("SET session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            warnings.append("the sample was loaded with triggers on (this role may not set session_replication_role): "
                            "the tracking triggers wrote their rows too")
        for table in ordered:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
                    staging = sql.Identifier("trackschema_plan_sample")
                    cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(staging, table.ident))
                    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, columns)) as copy:
                        for row in table.rows:
                            copy.write_row(row)
                    cur.execute(sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                        table.ident, columns, columns, staging))
                    copied = cur.rowcount
                    for (sequence, column) in cur.execute(
                        "SELECT s.seq, a.attname::text FROM pg_catalog.pg_attribute a, "
                        "LATERAL (SELECT pg_catalog.pg_get_serial_sequence(%s, a.attname) AS seq) s "
                        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND s.seq IS NOT NULL",
                        (table.ident.as_string(conn), table.ident.as_string(conn)),
                    ).fetchall():
                        cur.execute(sql.SQL("SELECT pg_catalog.setval(%s, (SELECT max({}) FROM {}))").format(sql.Identifier(column), table.ident), (sequence,))
                if copied > 0:
                    counts[table.label] = copied
            except psycopg.Error as exc:
                warnings.append(f"sample of {table.label} not loaded: {_first_line(exc)}")
    return counts


def _first_line(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _target_sizes(settings: Settings) -> dict[tuple[str, str], int | None]:
    """Bytes of every relation on the target: relpages x block size, from the catalog only (as
    of the last VACUUM/ANALYZE; None for a relation never vacuumed or analyzed since it was
    made); a partitioned table or index counts its partitions."""
    query = """
    WITH RECURSIVE rel AS (
        SELECT c.oid, n.nspname, c.relname
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'),
    tree(top, oid) AS (
        SELECT oid, oid FROM rel
        UNION ALL
        SELECT tree.top, i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
    SELECT rel.nspname, rel.relname, sum(c.relpages::bigint) * current_setting('block_size')::bigint,
           coalesce(bool_and(c.reltuples < 0 AND c.relpages = 0) FILTER (WHERE c.relkind NOT IN ('p', 'I')), false)
      FROM rel JOIN tree ON tree.top = rel.oid JOIN pg_catalog.pg_class c ON c.oid = tree.oid
     GROUP BY rel.nspname, rel.relname
    """
    with db.connect(settings.require_url(), application_name="trackschema-plan") as conn:
        conn.execute("SET default_transaction_read_only = on")
        return {(schema, name): None if unknown else int(size) for schema, name, size, unknown in conn.execute(query).fetchall()}


# --- the rehearsal ---------------------------------------------------------------------------------

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


def _rehearse(scratch_settings: Settings, target: str, extra_version_locations: list[str] | None) -> _Tracer:
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
                    message = _first_line(cause.orig or cause)
                raise PlanError(
                    f"revision {failed.revision} failed in the rehearsal at statement #{failed.index} ({failed.excerpt}): "
                    f"{message}; it would fail on the target too (nothing was changed there)"
                ) from exc
    finally:
        tracer.observer.close()
        engine.dispose()
    return tracer
