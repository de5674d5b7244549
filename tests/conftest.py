"""Fixtures: one real PostgreSQL per test session, one database per test.

The server comes from `trackschema.provision` (explicit TRACKSCHEMA_TEST_DATABASE_URL, a
testcontainer when a Docker engine answers, else a private cluster from the local
binaries). A database migrated to head once per session serves as the template every
test database is cloned from, so each test starts from a known, independent state.
Nothing here skips: without a server the session errors out.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from trackschema.migrations import runner as migrate
from trackschema.runtime import scratch
from trackschema.runtime.provision import PostgresServer, provision
from trackschema.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = provision(os.environ.get("TRACKSCHEMA_TEST_DATABASE_URL"))
    yield server
    server.stop()


def admin(server: PostgresServer) -> psycopg.Connection:
    return scratch.admin(server.url)


def create_database(server: PostgresServer, name: str, template: str | None = None) -> str:
    """CREATE DATABASE (cloned from `template` by file copy when given), replacing any
    database of that name; returns its URL (`trackschema.scratch.create_database`)."""
    return scratch.create_database(server.url, name, template=template)


def drop_database(server: PostgresServer, name: str) -> None:
    scratch.drop_database(server.url, name)


def make_settings(url: str, **overrides: object) -> Settings:
    """Settings with short waits so lock tests finish quickly."""
    values: dict[str, object] = {"database_url": url, "lock_wait": 5.0, "lock_timeout": 1.0, "lock_retries": 3, "retry_backoff": 0.2}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class Template:
    """The database at head that test databases are cloned from, migrated once per UTC
    month of the server's clock. What a migration makes depends on when it runs (the
    current month's partition and the months ahead of it), so a session that crosses a
    month boundary rebuilds it: every clone is what a fresh `upgrade head` gives now."""

    def __init__(self, server: PostgresServer) -> None:
        self.server, self.name = server, f"ts_template_{os.getpid()}"
        self.month: object = None

    def _server_month(self) -> object:
        with admin(self.server) as conn:
            row = conn.execute("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')").fetchone()
        assert row is not None
        return row[0]

    def current(self) -> str:
        month = self._server_month()
        if month != self.month:
            url = create_database(self.server, self.name)
            migrate.upgrade(make_settings(url), "head")
            self.month = month
        return self.name


@pytest.fixture(scope="session")
def template(pg_server: PostgresServer) -> Iterator[Template]:
    built = Template(pg_server)
    yield built
    drop_database(pg_server, built.name)


@pytest.fixture
def template_db(template: Template) -> str:
    """The name of the template database, migrated to head in the current UTC month."""
    return template.current()


def _fresh_name(request: pytest.FixtureRequest, prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


@pytest.fixture
def db_url(pg_server: PostgresServer, template_db: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database at head, private to this test."""
    with scratch.scratch_database(pg_server.url, _fresh_name(request, "ts_test"), template=template_db) as url:
        yield url


@pytest.fixture
def empty_db_url(pg_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database (no revision applied), private to this test."""
    with scratch.scratch_database(pg_server.url, _fresh_name(request, "ts_empty")) as url:
        yield url


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m trackschema ARGS` in a subprocess, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if k not in {"TRACKSCHEMA_DATABASE_URL", "DATABASE_URL"}}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"  # never the runner's terminal width (pytest-xdist workers set 80)
    return subprocess.run(
        [sys.executable, "-m", "trackschema", *args], capture_output=True, text=True, timeout=timeout, env=full_env, input=input, cwd=ROOT,
    )
