"""`sandbox start|url|stop` and `demo`, as a new user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.conftest import run_cli


def test_sandbox_lifecycle(tmp_path: Path) -> None:
    env = {"TRACKSCHEMA_SANDBOX_DIR": str(tmp_path / "sandbox"), "TRACKSCHEMA_PROVISION": "local"}
    started = run_cli("sandbox", "start", "--json", env=env)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    try:
        assert info["created"] and info["kind"] == "local"
        with psycopg.connect(info["url"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        again = json.loads(run_cli("sandbox", "start", "--json", env=env).stdout)
        assert again["url"] == info["url"] and not again["created"]
        assert run_cli("sandbox", "url", env=env).stdout.strip() == info["url"]
    finally:
        stopped = run_cli("sandbox", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (tmp_path / "sandbox").exists()
    missing = run_cli("sandbox", "url", env=env)
    assert missing.returncode == 2 and "sandbox start" in missing.stderr


def test_demo_runs_end_to_end_and_ends_with_a_sensible_status(tmp_path: Path) -> None:
    env = {"TRACKSCHEMA_SANDBOX_DIR": str(tmp_path / "sandbox"), "TRACKSCHEMA_PROVISION": "local"}
    result = run_cli("demo", "--stop", env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in ("sandbox", "upgrade head", "sample data", "status"):
        assert step in out
    assert "up to date" in out and "50 entities" in out
    assert not (tmp_path / "sandbox").exists()
