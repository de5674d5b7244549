"""`trackschema check`: is this database what its revision says it should be?

The target is read, never changed: its connection sets `default_transaction_read_only`,
and all it runs is catalog reads (its revision from `alembic_version`, the partition
declaration recorded in `trackschema.partitioned_tables`, a `catalog.snapshot_on`). What it
should be comes from a scratch database built on the same server (or on `--scratch-url`)
by running the revisions up to the target's, with the partition declaration the target
recorded (revision 0030 partitions the tables `TRACKSCHEMA_PARTITIONED_TABLES` names; a
scratch built with another declaration would differ legitimately). The scratch database
has a name of its own (`trackschema_check_<pid>_<random>`) and is dropped when the check
ends, also when it fails or is interrupted.

Building the scratch needs a role that may create databases there (CREATEDB or
superuser); without one the check refuses up front, naming `--scratch-url`. A scratch
server should run the same PostgreSQL major version: catalog text (deparsed expressions,
function definitions) can change between versions, and the result then carries a note.

The declaration is handed to the in-process upgrade through the environment variable
0030 reads (`TRACKSCHEMA_PARTITIONED_TABLES`), set for the length of the build and put
back afterwards: two checks must not run in threads of one process at the same time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from trackschema.errors import ConfigurationError, RevisionError
from trackschema.migrations import runner as migrate
from trackschema.operations.options import Options, option
from trackschema.runtime import db, scratch
from trackschema.runtime.scratch import ScratchRefused  # noqa: F401 - what check raises without a scratch (kept importable here)
from trackschema.runtime.settings import (
    PARTITIONED_TABLES_ENV,
    ServerUrl,
    Settings,
    libpq_url,
    mask_password,
    partition_declarations,
)
from trackschema.schema.catalog import CatalogSnapshot, Difference, compare, snapshot_on

SCRATCH_PREFIX = "trackschema_check"
# Why check needs a database on the scratch server, and where else it can make one (a refusal names both).
SCRATCH_NEED = "check builds the scratch database it compares with there"
SCRATCH_HINT = "pass --scratch-url URL of a server where it may (same PostgreSQL version)"


@dataclass(frozen=True)
class CheckOptions(Options):
    """`trackschema check`."""

    operation = "check"
    scratch_url: str | None = option(ServerUrl(), None,
                                     "A server where a scratch database may be created (default: the database's own server).")


@dataclass(frozen=True)
class Target:
    """What the check read from the database it checks."""

    revisions: list[str]
    declaration: str | None
    snapshot: CatalogSnapshot
    server_version: int


@dataclass(frozen=True)
class CheckResult:
    """The database, the revision it is at, the scratch it was compared with (dropped by
    now), and every difference: what is there and what should be."""

    database: str
    revisions: list[str]
    scratch_server: str
    scratch_database: str
    partitioned_tables: str | None
    differences: list[Difference]
    seconds: float
    build_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences

    def by_object(self) -> dict[str, list[Difference]]:
        """The differences grouped by the object they belong to, in report order."""
        grouped: dict[str, list[Difference]] = {}
        for d in self.differences:
            grouped.setdefault(d.object, []).append(d)
        return grouped

    def to_dict(self) -> dict[str, object]:
        return {
            "database": self.database, "revision": self.revisions, "clean": self.clean,
            "scratch_server": self.scratch_server, "scratch_database": self.scratch_database,
            "partitioned_tables": self.partitioned_tables,
            "differences": [d.to_dict() for d in self.differences],
            "seconds": round(self.seconds, 3), "build_seconds": round(self.build_seconds, 3), "notes": self.notes,
        }


def check(settings: Settings, options: CheckOptions | None = None, **given: Any) -> CheckResult:
    """Compare the database of `settings` with a scratch database built to its revision.

    `options` (else built from `given`, e.g. `scratch_url=`) says where the scratch is
    made. Raises `ScratchRefused` when no database may be created there, `RevisionError`
    when the database is at a revision these scripts do not know."""
    options = options if options is not None else CheckOptions(**given)
    url = settings.require_url()
    started = time.monotonic()
    target = read_target(url, settings)
    server = options.scratch_url or url
    name = scratch_name()
    build_started = time.monotonic()
    with built_to(server, name, target.revisions, target.declaration) as scratch_url:
        build_seconds = time.monotonic() - build_started
        with db.connect(scratch_url, application_name="trackschema-check") as conn:
            expected = snapshot_on(conn, schemas=target.snapshot.schemas)
            scratch_version = conn.info.server_version
    notes = []
    if scratch_version // 10000 != target.server_version // 10000:
        notes.append(f"the scratch server runs PostgreSQL {scratch_version // 10000}, the database {target.server_version // 10000}: "
                     "catalog text may differ between versions")
    return CheckResult(
        database=settings.display_url, revisions=target.revisions, scratch_server=mask_password(libpq_url(server)),
        scratch_database=name, partitioned_tables=target.declaration,
        differences=compare(target.snapshot, expected), seconds=time.monotonic() - started,
        build_seconds=build_seconds, notes=notes,
    )


def read_target(url: str, settings: Settings) -> Target:
    """The revision, the recorded partition declaration and the catalog snapshot of the
    database at `url`, read on a read-only connection whose waits are bounded by the
    settings' lock and statement timeouts."""
    with db.connect(url, application_name="trackschema-check") as conn:
        conn.execute("SET default_transaction_read_only = on")
        db.set_timeouts(conn.cursor(), lock_timeout=settings.lock_timeout, statement_timeout=settings.statement_timeout)
        revisions = current_revisions(conn)
        known(revisions)
        declaration = recorded_declaration(conn)
        snapshot = snapshot_on(conn)
        return Target(revisions, declaration, snapshot, conn.info.server_version)


def current_revisions(conn: psycopg.Connection) -> list[str]:
    """The revisions in the database's alembic_version table (empty: none applied)."""
    row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version ORDER BY 1").fetchall()]


def known(revisions: list[str]) -> None:
    """Refuse a revision the scripts of this trackschema do not have (a newer release's)."""
    script = migrate.script_directory()
    for revision in revisions:
        try:
            found = script.get_revision(revision)
        except Exception:  # noqa: BLE001 - Alembic raises several kinds for an unknown id
            found = None
        if found is None:
            raise RevisionError(f"the database is at revision {revision}, which this trackschema does not have "
                                "(see `trackschema history`): check it with the trackschema that migrated it")


# Tables a revision after 0030 partitions by itself, recording them in
# trackschema.partitioned_tables like 0030's own: (schema, table, and the boolean column of
# that revision's bookkeeping saying it did). They are left out of the declaration handed to
# 0030, which would otherwise partition them first and send the later revision down its
# other path. Revision 0090 partitions entity_events unless 0030's declaration had.
LATER_PARTITIONING: tuple[tuple[str, str, tuple[str, str, str]], ...] = (
    ("public", "entity_events", ("trackschema", "outbox", "entity_events_partitioned_here")),
)


def recorded_declaration(conn: psycopg.Connection) -> str | None:
    """The `TRACKSCHEMA_PARTITIONED_TABLES` value that rebuilds what revision 0030 partitioned
    here, as trackschema.partitioned_tables records it (`table:key[+default]`, `none` when
    it lists no table; tables of `LATER_PARTITIONING` that their revision partitioned are
    not 0030's), or None before revision 0030."""
    row = conn.execute("SELECT to_regclass('trackschema.partitioned_tables') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    row = conn.execute("SELECT has_table_privilege('trackschema.partitioned_tables', 'SELECT')").fetchone()
    if not row or not row[0]:
        raise ConfigurationError("cannot read trackschema.partitioned_tables, which says how to build the scratch database: "
                                 "check with a role that may read it (e.g. a member of pg_read_all_data)")
    rows = conn.execute("""SELECT parent_schema, parent_name, key_column, default_partition
                             FROM trackschema.partitioned_tables ORDER BY parent_schema, parent_name""").fetchall()
    later = {(schema, table) for schema, table, marker in LATER_PARTITIONING if _recorded_true(conn, *marker)}
    items = [("" if schema == "public" else f"{schema}.") + f"{name}:{key}" + ("+default" if default else "")
             for schema, name, key, default in rows if (schema, name) not in later]
    spec = ",".join(items) or "none"
    try:
        partition_declarations(spec)
    except ConfigurationError:
        raise ConfigurationError(f"trackschema.partitioned_tables records tables ({spec}) that "
                                 f"{PARTITIONED_TABLES_ENV} cannot name, so no scratch database can be built like it") from None
    return spec


def _recorded_true(conn: psycopg.Connection, schema: str, table: str, column: str) -> bool:
    """Whether bookkeeping table `schema.table` exists, has the boolean `column`, and it is
    true in some row (False when any of them is missing)."""
    row = conn.execute("""SELECT EXISTS (SELECT 1 FROM pg_attribute
                                          WHERE attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text))
                                            AND attname = %s AND NOT attisdropped AND atttypid = 'boolean'::regtype)""",
                       (schema, table, column)).fetchone()
    if not row or not row[0]:
        return False
    query = sql.SQL("SELECT coalesce(bool_or({}), false) FROM {}").format(sql.Identifier(column), sql.Identifier(schema, table))
    row = conn.execute(query).fetchone()
    return bool(row and row[0])


def scratch_name() -> str:
    """A database name no other check (or test) uses: the process id and 8 random hex digits."""
    return scratch.unique_name(SCRATCH_PREFIX)


@contextmanager
def declared_partitions(spec: str | None) -> Iterator[None]:
    """`TRACKSCHEMA_PARTITIONED_TABLES` set to `spec` for the block (nothing when None),
    then put back as it was."""
    if spec is None:
        yield
        return
    before = os.environ.get(PARTITIONED_TABLES_ENV)
    os.environ[PARTITIONED_TABLES_ENV] = spec
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PARTITIONED_TABLES_ENV, None)
        else:
            os.environ[PARTITIONED_TABLES_ENV] = before


@contextmanager
def built_to(server_url: str, name: str, revisions: list[str], declaration: str | None) -> Iterator[str]:
    """A scratch database `name` on `server_url`, migrated to `revisions` with the partition
    `declaration`, for the length of the block (its URL); dropped afterwards whatever
    happens. Refused up front (`ScratchRefused`) when the role may not create databases."""
    url = scratch.create_checked(server_url, name, what=SCRATCH_NEED, hint=SCRATCH_HINT)
    try:
        with declared_partitions(declaration):
            for revision in revisions:
                migrate.upgrade(Settings(database_url=url), revision)
        yield url
    finally:
        scratch.drop_database(server_url, name)  # IF EXISTS, WITH (FORCE)
