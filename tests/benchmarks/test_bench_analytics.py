"""Smoke test: the analytics benchmark runs end to end at a tiny size and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from trackschema.runtime.provision import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


def test_bench_analytics_runs_at_a_tiny_size(pg_server: PostgresServer) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_analytics.py"), "--raw-events", "6000", "--day-events", "2000",
         "--ingest-events", "2000", "--repeats", "1", "--json", "--database-url", pg_server.url],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["ingest"]["events"] == 2000
    assert all(figures["ingest"][k] > 0 for k in ("ingest_per_s", "plain_insert_per_s", "plain_server_insert_per_s", "copy_per_s", "schema_floor_per_s"))
    rollups = figures["rollups"]
    assert rollups["heavy_day_events"] == 2000 and rollups["aggregate_s"] > 0
    assert set(rollups["dashboards"]) == {"heaviest", "median"}
    assert all(d["rollup_p50_ms"] > 0 and d["raw_p50_ms"] > 0 for d in rollups["dashboards"].values())
