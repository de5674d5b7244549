"""The pytest plugin (`trackschema.testing.plugin`): loaded through its `pytest11` entry
point, usable by a test suite that imports nothing from trackschema, one clear error when
there is no server; the library behind it (`trackschema.testing.databases`): the template
is rebuilt when the server's UTC month changes and asked about the month only near its end,
the admin connection comes back after it was terminated."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

import trackschema.testing.plugin
from trackschema.runtime.provision import PostgresServer
from trackschema.testing.databases import Admin, Template, fresh_name


def test_the_plugin_is_loaded_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    manager = pytestconfig.pluginmanager
    assert manager.get_plugin("trackschema") is trackschema.testing.plugin
    loaded_by = {plugin: dist.metadata["name"] for plugin, dist in manager.list_plugin_distinfo()}
    assert loaded_by.get(trackschema.testing.plugin) == "trackschema"


def run_pytest(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess on `folder` alone: its own rootdir, no conftest of ours."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKSCHEMA_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, str(folder)],
                          capture_output=True, text=True, timeout=300, cwd=folder, env=full_env, check=False)


def test_an_application_suite_gets_the_fixtures_without_importing_anything(tmp_path: Path, pg_server: PostgresServer) -> None:
    (tmp_path / "test_app.py").write_text(textwrap.dedent('''\
        def test_a_clone_at_head(trackschema_db):
            with trackschema_db.connect() as conn:
                assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
                conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('app', 'App')")


        def test_another_clone_sees_nothing_of_it(trackschema_db, trackschema_template):
            assert trackschema_db.name != trackschema_template.current()
            with trackschema_db.connect() as conn:
                assert conn.execute("SELECT count(*) FROM entity_types").fetchone() == (0,)


        def test_a_migrator_starts_empty(trackschema_migrator):
            assert trackschema_migrator.current() is None
            trackschema_migrator.upgrade("0001_core_schema")
            assert trackschema_migrator.current() == "0001_core_schema"
        '''))
    done = run_pytest(tmp_path, "--trackschema-url", pg_server.url)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_without_a_server_the_tests_error_with_one_message_and_never_skip(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text("def test_needs_a_database(trackschema_db):\n    pass\n")
    nothing = tmp_path / "no-binaries"
    nothing.mkdir()
    done = run_pytest(tmp_path, "-rA", env={"TRACKSCHEMA_PROVISION": "local", "TRACKSCHEMA_PG_BINDIR": str(nothing)})
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 error" in done.stdout and "skipped" not in done.stdout
    assert "trackschema: no PostgreSQL server for the tests: no PostgreSQL server available (local binaries:" in done.stdout
    assert "apt-get install postgresql" in done.stdout

    done = run_pytest(tmp_path, "--trackschema-url", "postgresql://nobody@127.0.0.1:1/postgres")
    assert done.returncode == 1 and "1 error" in done.stdout
    assert "trackschema: no PostgreSQL server for the tests: cannot connect to postgresql://nobody@127.0.0.1:1/postgres" in done.stdout


class CountingTemplate(Template):
    """A template whose server month is set by the test; counts how often it is asked."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.asked = 0
        self.months: list[tuple[object, float]] = []

    def _server_month(self) -> tuple[object, float]:
        self.asked += 1
        return self.months.pop(0)


def test_the_template_is_rebuilt_when_the_server_month_changes(pg_server: PostgresServer) -> None:
    admin = Admin(pg_server.url)
    template = CountingTemplate(admin, fresh_name("ts_tpl_month"), revision="0001_core_schema")
    try:
        template.months = [(datetime(2026, 1, 1), 3600.0)]  # an hour left of January
        assert template.current() == template.name and template.builds == 1
        template.current()
        template.current()
        assert template.asked == 1 and template.builds == 1, "within the month the server is not asked again"
        with template.database("ts_tpl_clone") as db, db.connect() as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001_core_schema",)

        template.months = [(datetime(2026, 1, 1), 2.0), (datetime(2026, 2, 1), 86400.0)]  # the month ends in 2 s
        template._checked_until = 0.0  # as if the hour had passed
        template.current()
        assert template.asked == 2 and template.builds == 1, "still January: no rebuild"
        template.current()  # under MONTH_MARGIN left: asked again, and February has begun
        assert template.asked == 3 and template.builds == 2 and template.month == datetime(2026, 2, 1)
    finally:
        template.drop()
        admin.close()


def test_the_admin_connection_comes_back_after_it_was_terminated(pg_server: PostgresServer) -> None:
    admin = Admin(pg_server.url)
    name = fresh_name("ts_admin")
    try:
        pid = admin.connection().info.backend_pid
        with psycopg.connect(pg_server.url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        url = admin.create(name)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
        assert admin.connection().info.backend_pid != pid
        assert admin.create(name) == url, "a leftover of the same name is replaced"
    finally:
        admin.drop(name)
        admin.close()
