"""pytest plugin for applications that use trackschema's schema (entry point `trackschema`,
loaded by pytest once trackschema is installed; nothing to import).

Fixtures:

- `trackschema_server` (session): a PostgreSQL server from `trackschema.provision`, as
  `trackschema ci` gets one: `--trackschema-url` / ini `trackschema_url` (else
  `TRACKSCHEMA_TEST_DATABASE_URL`), else a testcontainers `PostgresContainer` (ini
  `trackschema_postgres_image`) where a Docker engine answers, else a private cluster from
  the local binaries. `--trackschema-postgres 16` (ini `trackschema_postgres`) asks for a
  major version. Without a server the tests error with one message; they never skip.
- `trackschema_template` (session): a database at head, migrated on first use and again
  when the server's UTC month changes; `.current()` gives its name.
- `trackschema_templates` (session): the same at any revision, `.at("0020_...")`.
- `trackschema_db` (per test): a clone of the template, `.url`, `.name`, `.settings`,
  `.connect()`; dropped after the test. Set-up is one `CREATE DATABASE ... TEMPLATE`.
- `trackschema_migrator` (per test): a fresh empty database with `.upgrade(rev)`,
  `.downgrade(rev)`, `.current()`, `.url`, `.connect()`: migrate to X, write rows, upgrade
  to Y, assert.
- `trackschema_citus_cluster` (session): a local Citus cluster, a coordinator and two
  workers (`provision.start_citus`, data in memory), started the first time a test asks
  for it and removed at the end. Always local binaries with Citus installed, whatever
  server the other fixtures use; without Citus the tests error with one line saying what
  to install (in this repository: `../shared/citus/install`, or `./run`); they never skip.
- `trackschema_citus_db` (per test): a fresh database on every node of that cluster, with
  the extension on each and the workers registered (`.url` is the coordinator's); dropped
  everywhere after the test.

Under pytest-xdist each worker has its own server (or, with a URL, its own database
names on the shared server) and its own template; a worker that runs a Citus test starts
its own cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from trackschema.runtime.provision import VERSIONS

if TYPE_CHECKING:
    from trackschema.runtime.provision import CitusCluster, PostgresServer
    from trackschema.testing.databases import (
        Admin,
        Database,
        Migrator,
        Template,
        Templates,
    )

URL_ENV = "TRACKSCHEMA_TEST_DATABASE_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trackschema", "trackschema test databases")
    group.addoption("--trackschema-url", dest="trackschema_url", default=None, metavar="URL",
                    help=f"PostgreSQL server where the tests may create databases (else ini trackschema_url, then ${URL_ENV}; "
                         "else a testcontainer or a local cluster is started).")
    group.addoption("--trackschema-postgres", dest="trackschema_postgres", default=None, choices=VERSIONS,
                    help="PostgreSQL major version of the server (else ini trackschema_postgres; default: whatever is found).")
    parser.addini("trackschema_url", "PostgreSQL server where the tests may create databases.", default="")
    parser.addini("trackschema_postgres", "PostgreSQL major version of the test server (15, 16 or 17).", default="")
    parser.addini("trackschema_postgres_image", "Container image for the test server (default postgres:<version>, or postgres:15).", default="")


def _setting(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name, default=None) if name != "trackschema_postgres_image" else None
    return value or str(config.getini(name) or "").strip() or None


def start_server(config: pytest.Config) -> PostgresServer:
    """The server the options describe; `pytest.fail` with one line when there is none."""
    from trackschema.errors import TrackschemaError
    from trackschema.runtime import scratch
    from trackschema.runtime.provision import provision, require_version

    url = _setting(config, "trackschema_url") or os.environ.get(URL_ENV) or None
    version = _setting(config, "trackschema_postgres")
    if version is not None and version not in VERSIONS:
        pytest.fail(f"trackschema: ini trackschema_postgres = {version!r}: choose one of {', '.join(VERSIONS)}", pytrace=False)
    try:
        server = provision(url, version=version, image=_setting(config, "trackschema_postgres_image"), fast=True)
        try:
            scratch.admin(server.url).close()  # a URL given is reachable, or this says why
            require_version(server, version)
        except TrackschemaError:
            server.stop()
            raise
    except TrackschemaError as exc:
        pytest.fail(f"trackschema: no PostgreSQL server for the tests: {exc}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def trackschema_server(pytestconfig: pytest.Config) -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (see the module docstring); stopped at the end when
    this session started it."""
    server = start_server(pytestconfig)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def trackschema_admin(trackschema_server: PostgresServer) -> Iterator[Admin]:
    """The session's connection for CREATE and DROP DATABASE."""
    from trackschema.testing.databases import Admin

    admin = Admin(trackschema_server.url)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def trackschema_templates(trackschema_admin: Admin) -> Iterator[Templates]:
    """Templates at any revision (`.at(revision)`), each built on first use; dropped at the end."""
    from trackschema.testing.databases import Templates

    templates = Templates(trackschema_admin)
    yield templates
    templates.drop_all()


@pytest.fixture(scope="session")
def trackschema_template(trackschema_templates: Templates) -> Template:
    """The database at head every `trackschema_db` is cloned from."""
    return trackschema_templates.at("head")


@pytest.fixture
def trackschema_db(trackschema_template: Template) -> Iterator[Database]:
    """A database at head, this test's own: `.url`, `.name`, `.settings`, `.connect()`."""
    with trackschema_template.database() as db:
        yield db


@pytest.fixture
def trackschema_migrator(trackschema_admin: Admin) -> Iterator[Migrator]:
    """A fresh empty database, this test's own, to migrate step by step: `.upgrade(rev)`,
    `.downgrade(rev)`, `.current()`, `.url`, `.connect()`."""
    from trackschema.testing.databases import empty_database

    with empty_database(trackschema_admin) as migrator:
        yield migrator


CITUS_WORKERS = 2


@pytest.fixture(scope="session")
def trackschema_citus_cluster() -> Iterator[CitusCluster]:
    """A local Citus cluster for the session: a coordinator and two workers (see the module
    docstring); `.url` is the coordinator's `postgres` database, `.nodes` every node.
    Stopped and removed at the end."""
    from trackschema.errors import TrackschemaError
    from trackschema.runtime.provision import start_citus

    try:
        cluster = start_citus(CITUS_WORKERS, fast=True)
    except TrackschemaError as exc:
        pytest.fail(f"trackschema: no Citus cluster for the tests: {exc}", pytrace=False)
    yield cluster
    cluster.destroy()


@pytest.fixture
def trackschema_citus_db(trackschema_citus_cluster: CitusCluster) -> Iterator[Database]:
    """A fresh Citus database, this test's own, on every node of the session's cluster:
    `.url` (the coordinator's), `.name`, `.settings`, `.connect()`."""
    from trackschema.testing.databases import citus_database

    with citus_database(trackschema_citus_cluster) as db:
        yield db
