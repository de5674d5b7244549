"""Fixtures: one real PostgreSQL per test session, one database per test.

They are thin wrappers over the pytest plugin `trackschema.testing.plugin` (loaded through
its `pytest11` entry point, as in any application's tests): the server comes from
`trackschema.provision` (explicit TRACKSCHEMA_TEST_DATABASE_URL or --trackschema-url, a
testcontainer when a Docker engine answers, else a private cluster from the local
binaries); a database migrated to head once per session (and again when the server's UTC
month changes) is the template every test database is cloned from, so each test starts
from a known, independent state. Nothing here skips: without a server the session errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from trackschema.runtime import scratch
from trackschema.runtime.provision import PostgresServer
from trackschema.runtime.settings import Settings
from trackschema.testing.databases import Database, Migrator, Template

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pg_server(trackschema_server: PostgresServer) -> PostgresServer:
    return trackschema_server


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


@pytest.fixture(scope="session")
def template(trackschema_template: Template) -> Template:
    """The plugin's template at head: `.current()` is its name, migrated in the current UTC month."""
    return trackschema_template


@pytest.fixture
def template_db(template: Template) -> str:
    """The name of the template database, migrated to head in the current UTC month."""
    return template.current()


@pytest.fixture
def db_url(trackschema_db: Database) -> str:
    """A database at head, private to this test."""
    return trackschema_db.url


@pytest.fixture
def empty_db_url(trackschema_migrator: Migrator) -> str:
    """An empty database (no revision applied), private to this test."""
    return trackschema_migrator.url


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
