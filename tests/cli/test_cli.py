"""The CLI as a user meets it: exit codes, one-line errors, JSON, masked passwords."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, run_cli_process
from trackschema.migrations import runner as migrate

HEAD = None


def head() -> str:
    return migrate.heads()[0].revision


def one_line_error(result) -> str:  # noqa: ANN001
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bad_url_is_one_line_and_exit_2() -> None:
    """A real process: a user error is one line on stderr and exit code 2."""
    result = run_cli_process("--database-url", "mysql://u:hunter2@host/db", "status")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "not PostgreSQL" in line and "hunter2" not in line


def test_unreachable_server_is_one_line_exit_2_and_masks_the_password() -> None:
    """A real process: a connection error is one line, exit code 2, the password masked."""
    result = run_cli_process("--database-url", "postgresql://app:hunter2@127.0.0.1:1/app", "upgrade")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "cannot connect" in line and "app:***@127.0.0.1:1" in line and "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize("url", [
    "postgresql://app:hun@ter2@127.0.0.1:5432/app",  # an unencoded '@' in the password
    "postgresql://app:hunter2@127.0.0.1:99999/app",
    "postgresql://app:hunter2@nohost.invalid:5432/app",
])
@pytest.mark.parametrize("command", [("upgrade",), ("downgrade", "base"), ("status",), ("current",), ("backfill", "progress")])
def test_bad_connection_strings_are_one_line_exit_2_and_never_show_the_password(url: str, command: tuple[str, ...]) -> None:
    result = run_cli(*command, env={"TRACKSCHEMA_DATABASE_URL": url})
    assert result.returncode == 2, result.stderr
    line = one_line_error(result)
    assert "hunter2" not in result.stderr + result.stdout and "ter2" not in result.stderr + result.stdout
    assert "app:***@" in line and "migration statement failed" not in line
    assert ("cannot connect" in line and "nohost.invalid:5432" in line) or "port 99999" in line or "percent-encode" in line


def test_verbose_shows_the_traceback() -> None:
    result = run_cli_process("--verbose", "--database-url", "postgresql://app@127.0.0.1:1/app", "current")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_missing_url_says_how_to_provide_one() -> None:
    result = run_cli("status")
    assert result.returncode == 2
    assert "TRACKSCHEMA_DATABASE_URL" in one_line_error(result)


def test_unknown_revision_exit_2(empty_db_url: str) -> None:
    result = run_cli("upgrade", "feedface", env={"TRACKSCHEMA_DATABASE_URL": empty_db_url})
    assert result.returncode == 2
    assert "feedface" in one_line_error(result)


def test_database_url_env_fallback_order(empty_db_url: str) -> None:
    # DATABASE_URL is used when TRACKSCHEMA_DATABASE_URL is unset; the flag beats both.
    result = run_cli("current", "--json", env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 0 and json.loads(result.stdout)["current"] == []
    bad = "postgresql://nobody@127.0.0.1:1/x"
    result = run_cli("--database-url", empty_db_url, "current", "--json", env={"TRACKSCHEMA_DATABASE_URL": bad})
    assert result.returncode == 0


def test_upgrade_status_current_history_heads(empty_db_url: str) -> None:
    env = {"TRACKSCHEMA_DATABASE_URL": empty_db_url.replace("postgres@", "postgres:s3cret@")}
    status = run_cli("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    page = json.loads(status.stdout)
    assert page["current"] == [] and not page["up_to_date"] and page["pending"]
    assert "s3cret" not in status.stdout and ":***@" in page["database"]

    up = run_cli("upgrade", "--json", env=env)
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["after"] == [head()]

    assert json.loads(run_cli("current", "--json", env=env).stdout)["current"] == [head()]
    after = json.loads(run_cli("status", "--json", env=env).stdout)
    assert after["up_to_date"] and after["pending"] == [] and after["invalid_indexes"] == []
    history = json.loads(run_cli("history", "--json").stdout)
    assert history[0]["revision"] == head() and history[-1]["down_revision"] is None
    assert [h["revision"] for h in json.loads(run_cli("heads", "--json").stdout)] == [head()]

    human = run_cli("status", env=env)
    assert "up to date" in human.stdout and "s3cret" not in human.stdout


def test_upgrade_sql_prints_sql_without_a_database() -> None:
    result = run_cli("upgrade", "head", "--sql")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE entities" in result.stdout and "COMMIT;" in result.stdout


def test_downgrade_refusal_is_one_line(db_url: str) -> None:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('x', 'X')")
    result = run_cli("downgrade", "base", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 2
    assert "--allow-data-loss" in one_line_error(result)


def test_bad_duration_is_one_line() -> None:
    result = run_cli("upgrade", "--lock-timeout", "soon", env={"TRACKSCHEMA_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"})
    assert result.returncode == 2
    assert "bad --lock-timeout 'soon'" in one_line_error(result)
