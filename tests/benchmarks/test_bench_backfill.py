"""Smoke test: the backfill benchmark runs end to end at a tiny size (its figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT
from trackschema.runtime.provision import PostgresServer


def test_bench_backfill_runs_at_a_tiny_size(pg_server: PostgresServer) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_backfill.py"), "--rows", "2000", "--copy-rows", "200", "--copy-repeat", "1", "--repeat", "1",
         "--writers", "2", "--writer-seconds", "0.3", "--warmup", "0.1", "--throttle", "10ms", "--database-url", pg_server.url, "--json"],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["results"]] == ["backfill", "writers", "writers (throttled)", "copy"]
    backfill = report["results"][0]
    assert backfill["baseline"]["count"] == backfill["measured"]["count"] == 1500  # the same rows, both ways
    assert all(r["ratio"] > 0 for r in report["results"])
