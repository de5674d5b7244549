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


def _cli_env(env: dict[str, str] | None) -> dict[str, str]:
    """The environment a CLI run gets: this process's, without the database URL variables
    (a test names its database), plus `env`, at a fixed width of 200 columns (never the
    runner's terminal width: pytest-xdist workers set 80)."""
    full_env = {k: v for k, v in os.environ.items() if k not in {"TRACKSCHEMA_DATABASE_URL", "DATABASE_URL"}}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"
    return full_env


def run_cli_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m trackschema ARGS` in a subprocess, as a user would (~0.6 s each).

    For what only a process shows: the exit code Python gives an uncaught exception,
    --verbose's logging and traceback, what starting the CLI imports, signals, and the
    one-line error a user sees. Everything else uses `run_cli`, the same command in-process."""
    return subprocess.run(
        [sys.executable, "-m", "trackschema", *args], capture_output=True, text=True, timeout=timeout, env=_cli_env(env), input=input, cwd=ROOT,
    )


def _set_environ(wanted: dict[str, str]) -> None:
    """Make os.environ equal `wanted`, touching only the variables that differ (a test's
    threads may be reading the C environment meanwhile, e.g. libpq in a connect)."""
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


class _CliTimeout(BaseException):
    """Raised by the alarm in `run_cli` (a BaseException, so no `except Exception` in the
    command swallows it)."""


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `trackschema ARGS` in this process, through the entry point `python -m trackschema`
    runs (`cli.commands.main`: the Typer app, its adapters, the library), and return what a
    subprocess would: the exit code, stdout and stderr (milliseconds instead of ~0.6 s).

    Like `run_cli_process`: the environment (`_cli_env`, set in os.environ for the call and
    restored), the working directory (the project root), stdin (`input`, else empty), fresh
    Rich consoles made in that environment (so 200 columns, no colour: output is not a
    terminal), sys.argv, exit codes from SystemExit, and an uncaught exception printed as a
    traceback with exit code 1, as Python does. The SIGTERM handler `queue work` installs
    and the logging configuration are restored after the call. `--verbose` is refused here:
    its logging goes through the root logger, which pytest owns in this process; use
    `run_cli_process`. `timeout` raises subprocess.TimeoutExpired, as subprocess.run does."""
    import io
    import logging
    import signal
    import traceback

    from rich.console import Console

    from trackschema.cli import commands, console

    if "--verbose" in args or "-v" in args:
        raise ValueError("run_cli runs in-process: use run_cli_process for --verbose")
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_consoles = (console.out, console.err)
    root, alembic_logger = logging.getLogger(), logging.getLogger("alembic")
    saved_logging = (root.level, list(root.handlers), alembic_logger.level)
    saved_sigterm, saved_alarm = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGALRM)
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")

    def alarm(*_: object) -> None:
        raise _CliTimeout

    code: int
    try:
        _set_environ(_cli_env(env))
        os.chdir(ROOT)
        sys.argv = ["trackschema", *args]
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
        console.out, console.err = Console(highlight=False), Console(stderr=True, highlight=False)
        signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            commands.main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                stderr.write(f"{exc.code}\n")
                code = 1
        except _CliTimeout:
            raise subprocess.TimeoutExpired(["trackschema", *args], timeout) from None
        except Exception:  # noqa: BLE001 - what Python does with an uncaught exception
            stderr.write(traceback.format_exc())
            code = 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, saved_alarm)
        signal.signal(signal.SIGTERM, saved_sigterm)
        root.setLevel(saved_logging[0])
        root.handlers[:] = saved_logging[1]
        alembic_logger.setLevel(saved_logging[2])
        console.out, console.err = saved_consoles
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        _set_environ(saved_env)

    def text(stream: io.TextIOWrapper) -> str:
        return stream.buffer.getvalue().decode("utf-8").replace("\r\n", "\n")  # type: ignore[attr-defined]

    return subprocess.CompletedProcess(["trackschema", *args], code, text(stdout), text(stderr))


# --- the order tests are handed to the workers ----------------------------------------------
# pytest-xdist (`--dist loadgroup`, pyproject.toml) hands tests out in collection order, one
# work unit at a time to whichever worker is free (an `xdist_group` is one unit, the largest
# groups first; `_group_the_xdist_groups` makes the groups work under pytest 9.2).
# A long test handed out last keeps one worker busy while the other idles, so the longest
# modules go first, and within a module the longest tests first. A module's tests stay
# together in the queue, but consecutive ones may go to either worker: a module whose
# fixtures should be built once is an xdist_group (pg_cron scheduling, plan). The durations are
# a recorded run's (tests/durations.txt: seconds, setup + call + teardown, then the node id);
# a test not listed counts as 0 s and keeps its place. Only the order changes, never what
# runs; a stale list makes the run slower, never wrong. Regenerate after large changes:
#   .venv/bin/python -m pytest --durations=0 -q | python tests/durations.py > tests/durations.txt
DURATIONS = ROOT / "tests" / "durations.txt"


def _recorded_durations() -> dict[str, float]:
    durations: dict[str, float] = {}
    if DURATIONS.exists():
        for line in DURATIONS.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                seconds, nodeid = line.split(maxsplit=1)
                durations[nodeid] = float(seconds)
    return durations


def _plain_nodeid(nodeid: str) -> str:
    """The node id without the `@group` suffix xdist adds under --dist loadgroup."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") else nodeid


def _group_the_xdist_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """What `--dist loadgroup` relies on: each xdist_group test's node id ends in
    `@group`, which the controller reads to send the group to one worker. pytest-xdist
    (3.8) sets it as `item._nodeid`, which pytest 9.2 no longer reads (the id lives in
    `item._id`), so the groups silently became one test each; this sets it where pytest
    reads it. Only in a worker of a loadgroup run (`loadgroup` is set there)."""
    if not config.getoption("loadgroup", default=False):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # an older pytest: xdist's own suffix works
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
        if names and _plain_nodeid(item.nodeid) == item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _group_the_xdist_groups(config, items)
    durations = _recorded_durations()
    seconds = [durations.get(_plain_nodeid(item.nodeid), 0.0) for item in items]
    module_total: dict[str, float] = {}
    module_first: dict[str, int] = {}
    for index, item in enumerate(items):
        module = _plain_nodeid(item.nodeid).split("::", 1)[0]
        module_total[module] = module_total.get(module, 0.0) + seconds[index]
        module_first.setdefault(module, index)

    def key(index: int) -> tuple[float, int, float, int]:
        module = _plain_nodeid(items[index].nodeid).split("::", 1)[0]
        return (-module_total[module], module_first[module], -seconds[index], index)

    items[:] = [items[i] for i in sorted(range(len(items)), key=key)]
