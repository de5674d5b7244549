"""Scratch databases: drop one if it exists, create it (optionally cloned from a template),
migrate it, hand out its URL, drop it again.

The test fixtures, the benchmarks and the demo all make throwaway databases this way;
`plan`, `check` and `ci` make theirs on a server they were given, so they first check that
their role may create databases there (`require_createdb`, `create_checked`) and otherwise
refuse in one line (`ScratchRefused`) naming the option that points them elsewhere.
Everything here runs on an autocommit connection to the server URL's own database (the
maintenance database, usually `postgres`): CREATE DATABASE and DROP DATABASE cannot run
inside a transaction block, so each statement commits on its own and nothing is left
half done between them. Names always go through `psycopg.sql.Identifier`, so any name
PostgreSQL accepts (spaces, quotes, capitals) works.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from trackschema.errors import ProvisioningError
from trackschema.runtime import db
from trackschema.migrations import runner as migrate
from trackschema.runtime.settings import Settings, libpq_url, mask_password, with_database


class ScratchRefused(ProvisioningError):
    """A command may not create its own databases on the server it was given (exit 2): its
    role has neither CREATEDB nor superuser, or the server refuses the CREATE DATABASE. A
    `ProvisioningError`: that server cannot serve the command."""


def admin(server_url: str) -> psycopg.Connection:
    """An autocommit connection to the database `server_url` names, for CREATE/DROP
    DATABASE. A failure to connect is a `ConnectionFailed` naming the server (password
    masked)."""
    return db.connect(server_url, autocommit=True, application_name="trackschema-scratch")


def database_url(server_url: str, name: str) -> str:
    """The libpq URL of database `name` on the server of `server_url` (the name
    percent-encoded by `with_database`)."""
    return libpq_url(with_database(server_url, name))


def drop(conn: psycopg.Connection, name: str) -> None:
    """DROP DATABASE IF EXISTS `name` WITH (FORCE) on the autocommit `conn`: the sessions
    connected to it are terminated first (PostgreSQL 13+), then it is dropped and the drop
    commits. A database that does not exist is not an error. It still fails when it
    cannot end every session (a prepared transaction, a replication slot) or when `conn`
    is itself connected to `name`."""
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create(conn: psycopg.Connection, name: str, *, template: str | None = None) -> None:
    """CREATE DATABASE `name` on the autocommit `conn`, which commits on its own. With
    `template` it is a file copy of that database (`STRATEGY FILE_COPY`: a checkpoint, then
    the files copied, no WAL for the data); the template must have no other session
    connected while the copy is made, or PostgreSQL refuses ("source database is being
    accessed by other users"). Without `template` it is a copy of `template1`. Fails when
    `name` exists: `create_database` drops it first."""
    if template is None:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    else:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(sql.Identifier(name), sql.Identifier(template))
        )


def create_database(server_url: str, name: str, *, template: str | None = None, upgrade_to: str | None = None) -> str:
    """A new, empty database `name` (or a clone of `template`), replacing any database of
    that name; returns its libpq URL.

    One admin connection runs `drop` (ending every session connected to the old database)
    and then `create`, each committed on its own. With `upgrade_to` the new database is
    then migrated to that revision with default `Settings` (`migrate.upgrade`: one
    transaction per revision, under the migration advisory lock)."""
    with admin(server_url) as conn:
        drop(conn, name)
        create(conn, name, template=template)
    url = database_url(server_url, name)
    if upgrade_to is not None:
        migrate.upgrade(Settings(database_url=url), upgrade_to)
    return url


def drop_database(server_url: str, name: str) -> None:
    """`drop` on a connection of its own: DROP DATABASE IF EXISTS `name` WITH (FORCE)."""
    with admin(server_url) as conn:
        drop(conn, name)


@contextmanager
def scratch_database(server_url: str, name: str, *, template: str | None = None, upgrade_to: str | None = None) -> Iterator[str]:
    """`create_database` for the length of a `with` block, which gets the URL; the database
    is dropped (WITH (FORCE), so connections still open to it do not stop the drop) when
    the block ends, also when it ends with an exception (or `upgrade_to` fails)."""
    url = create_database(server_url, name, template=template)
    try:
        if upgrade_to is not None:
            migrate.upgrade(Settings(database_url=url), upgrade_to)
        yield url
    finally:
        drop_database(server_url, name)


def unique_name(prefix: str) -> str:
    """A database name no other process or call uses: `<prefix>_<pid>_<8 random hex digits>`."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def require_createdb(server_url: str, *, what: str, hint: str) -> None:
    """Refuse (`ScratchRefused`, one line, password masked) when the role of `server_url`
    may not create databases there (neither CREATEDB nor superuser), before anything is
    created: `role R may not create databases on SERVER: {what}; {hint}`. `what` says what
    the command makes there, `hint` which of its options to give instead."""
    with admin(server_url) as conn:
        row = conn.execute("SELECT current_user, rolcreatedb OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()
    if row is None or not row[1]:
        who = f"role {row[0]}" if row is not None else "this role"
        raise ScratchRefused(f"{who} may not create databases on {mask_password(libpq_url(server_url))}: {what}; {hint}")


def create_checked(server_url: str, name: str, *, what: str, hint: str) -> str:
    """`create_database(server_url, name)` (its libpq URL) after `require_createdb`. A CREATE
    DATABASE the server refuses anyway (a privilege, a hot standby, a full disk, too many
    databases) is a `ScratchRefused` too: `cannot create a database on SERVER (reason):
    {what}; {hint}`."""
    require_createdb(server_url, what=what, hint=hint)
    try:
        return create_database(server_url, name)
    except psycopg.Error as exc:
        reason = getattr(exc.diag, "message_primary", None) or str(exc).strip() or type(exc).__name__
        raise ScratchRefused(f"cannot create a database on {mask_password(libpq_url(server_url))} "
                             f"({reason.splitlines()[0]}): {what}; {hint}") from None
