"""Databases for tests: a template migrated once, a clone of it per test, and fresh empty
databases a test migrates itself.

This is the library behind the pytest plugin (`trackschema.testing.plugin`); it imports
no pytest, so a script or another test runner can use it too:

    server = provision(fast=True)
    admin = Admin(server.url)
    template = Template(admin, "app_template")          # head, built on first use
    with template.database("app_test") as db:           # CREATE DATABASE ... TEMPLATE
        with db.connect() as conn: ...

- `Admin` keeps one autocommit connection to the server's maintenance database for every
  CREATE and DROP DATABASE of a session: a test's set-up is one statement, not a new
  connection plus one.
- `Template` is a database migrated to a revision (head by default) once per UTC month of
  the server's clock: what a migration makes depends on when it runs (the current month's
  partition and the months ahead), so when the server's month has changed since the
  template was built, the next use rebuilds it, and every clone is what a fresh
  `upgrade` gives now. The month is asked of the server again only near its end (the
  time left is measured on this process's monotonic clock), not once per test.
- `Database` is one test's database: its `name`, its libpq `url`, migration `settings`
  and `connect()`. `Migrator` is a fresh empty database with `upgrade`, `downgrade` and
  `current`, for data-migration tests (migrate to X, write rows, upgrade to Y, assert).

Clones are file copies (`CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY`, see
`scratch.create`); names carry this process's id, so pytest-xdist workers sharing one
server never collide.

`citus_database(cluster)` is the same kind of `Database` on a local Citus cluster
(`provision.CitusCluster`): a fresh database made on every node, with `CREATE EXTENSION
citus` on each and the workers registered on the coordinator (Citus keeps that metadata per
database and does not create databases on the workers); its `url` is the coordinator's.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from trackschema.runtime import scratch
from trackschema.runtime.settings import Settings

if TYPE_CHECKING:
    from trackschema.runtime.provision import CitusCluster

_counter = itertools.count()
# Ask the server for its month again when fewer seconds than this are left of it.
MONTH_MARGIN = 5.0


def fresh_name(prefix: str) -> str:
    """A database name no other process or earlier call has: `<prefix>_<pid>_<n>`."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


def default_settings(url: str) -> Settings:
    """Migration settings for a test database: the defaults, on `url`."""
    return Settings(database_url=url)


class Admin:
    """One autocommit connection to a server's maintenance database, for CREATE and DROP
    DATABASE. A connection that was lost (a test terminated it, the server restarted) is
    replaced on the next call."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._conn: psycopg.Connection | None = None

    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = scratch.admin(self.server_url)
        return self._conn

    def _run(self, action: Callable[[psycopg.Connection], None]) -> None:
        conn = self.connection()
        try:
            action(conn)
        except psycopg.OperationalError:
            if not (conn.closed or conn.broken):
                raise
            action(self.connection())  # the connection itself was lost: once more on a new one

    def create(self, name: str, *, template: str | None = None) -> str:
        """CREATE DATABASE `name` (a file copy of `template` when given); a leftover of that
        name (an earlier session killed before its clean-up) is dropped first. Returns the
        libpq URL."""
        def make(conn: psycopg.Connection) -> None:
            try:
                scratch.create(conn, name, template=template)
            except psycopg.errors.DuplicateDatabase:
                scratch.drop(conn, name)
                scratch.create(conn, name, template=template)

        self._run(make)
        return scratch.database_url(self.server_url, name)

    def drop(self, name: str) -> None:
        """DROP DATABASE IF EXISTS `name` WITH (FORCE)."""
        self._run(lambda conn: scratch.drop(conn, name))

    def url(self, name: str) -> str:
        return scratch.database_url(self.server_url, name)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Database:
    """A test's own database."""

    name: str
    url: str
    settings: Settings

    def connect(self, *, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection:
        """A new psycopg connection to this database (autocommit unless told otherwise);
        close it, or use it in a `with` block."""
        return psycopg.connect(self.url, autocommit=autocommit, **kwargs)


@dataclass
class Migrator(Database):
    """A fresh empty database that the test migrates itself. History and settings are
    trackschema's own (`migrations.runner`): one transaction per revision, the migration
    lock, the downgrade guards."""

    extra_version_locations: list[str] | None = field(default=None)

    def upgrade(self, revision: str = "head") -> Any:
        """Apply revisions up to `revision`; returns the `MigrationResult`."""
        from trackschema.migrations import runner

        return runner.upgrade(self.settings, revision, extra_version_locations=self.extra_version_locations)

    def downgrade(self, revision: str, *, allow_data_loss: bool = False) -> Any:
        """Revert down to `revision` (`base` for all); a downgrade that would drop tables
        holding rows is refused unless `allow_data_loss`."""
        from dataclasses import replace

        from trackschema.migrations import runner

        settings = replace(self.settings, allow_data_loss=allow_data_loss) if allow_data_loss else self.settings
        return runner.downgrade(settings, revision, extra_version_locations=self.extra_version_locations)

    def current(self) -> str | None:
        """The revision the database is at; None at base."""
        from trackschema.migrations import runner

        heads = runner.current_heads(self.settings)
        if len(heads) > 1:
            raise AssertionError(f"the database has several heads: {', '.join(heads)}")
        return heads[0] if heads else None


class Template:
    """A database at `revision`, built on first use and rebuilt when the server's UTC month
    changed since (module docstring). `current()` gives its name, ready to clone."""

    def __init__(self, admin: Admin, name: str, *, revision: str = "head",
                 settings: Callable[[str], Settings] = default_settings,
                 extra_version_locations: list[str] | None = None) -> None:
        self.admin, self.name, self.revision = admin, name, revision
        self.settings, self.extra_version_locations = settings, extra_version_locations
        self.month: object = None
        self.builds = 0
        self._checked_until = 0.0  # monotonic time until which the month cannot have changed

    def _server_month(self) -> tuple[object, float]:
        row = self.admin.connection().execute(
            """SELECT date_trunc('month', now() AT TIME ZONE 'UTC'),
                      extract(epoch FROM date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month'
                                         - now() AT TIME ZONE 'UTC')"""
        ).fetchone()
        assert row is not None
        return row[0], float(row[1])

    def current(self) -> str:
        """The template's name, migrated in the server's current UTC month."""
        if time.monotonic() < self._checked_until:
            return self.name
        month, seconds_left = self._server_month()
        if month != self.month:
            self.build()
            self.month = month
        self._checked_until = time.monotonic() + seconds_left - MONTH_MARGIN
        return self.name

    def build(self) -> None:
        """(Re)create the template and migrate it to `revision`."""
        from trackschema.migrations import runner

        self.month = None
        url = self.admin.create(self.name)
        runner.upgrade(self.settings(url), self.revision, extra_version_locations=self.extra_version_locations)
        self.builds += 1

    def clone(self, name: str) -> Database:
        """A new database `name`, a file copy of the template (built or rebuilt first if needed)."""
        url = self.admin.create(name, template=self.current())
        return Database(name, url, self.settings(url))

    @contextmanager
    def database(self, prefix: str = "trackschema_test") -> Iterator[Database]:
        """A clone for the length of a `with` block, dropped afterwards (WITH (FORCE): a
        connection the test left open does not stop it)."""
        db = self.clone(fresh_name(prefix))
        try:
            yield db
        finally:
            self.admin.drop(db.name)

    def drop(self) -> None:
        self.admin.drop(self.name)
        self.month, self._checked_until = None, 0.0


class Templates:
    """One `Template` per revision, made on first request and dropped by `drop_all`:
    `templates.at("head")`, `templates.at("0020_promotion_expand")`."""

    def __init__(self, admin: Admin, *, prefix: str = "trackschema_template",
                 settings: Callable[[str], Settings] = default_settings) -> None:
        self.admin, self.prefix, self.settings = admin, prefix, settings
        self._made: dict[str, Template] = {}

    def at(self, revision: str = "head") -> Template:
        if revision not in self._made:
            suffix = "" if revision == "head" else f"_{len(self._made)}"
            self._made[revision] = Template(self.admin, f"{self.prefix}_{os.getpid()}{suffix}", revision=revision, settings=self.settings)
        return self._made[revision]

    def drop_all(self) -> None:
        for template in self._made.values():
            template.drop()
        self._made.clear()


@contextmanager
def empty_database(admin: Admin, prefix: str = "trackschema_empty", *,
                   settings: Callable[[str], Settings] = default_settings,
                   extra_version_locations: list[str] | None = None) -> Iterator[Migrator]:
    """A fresh empty database (no revision applied) for a `with` block, as a `Migrator`."""
    name = fresh_name(prefix)
    url = admin.create(name)
    try:
        yield Migrator(name, url, settings(url), extra_version_locations)
    finally:
        admin.drop(name)


@contextmanager
def citus_database(cluster: CitusCluster, prefix: str = "trackschema_citus", *,
                   settings: Callable[[str], Settings] = default_settings) -> Iterator[Database]:
    """A fresh database on every node of `cluster`, Citus-enabled (`CitusCluster.create_database`),
    for a `with` block; `url` is the coordinator's. Dropped on every node afterwards."""
    name = fresh_name(prefix)
    url = cluster.create_database(name)
    try:
        yield Database(name, url, settings(url))
    finally:
        cluster.drop_database(name)
