"""Smoke test: bench_ingest runs end to end at a tiny size and ends with its JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from trackschema.runtime.provision import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"ingest_events_per_s", "floor_events_per_s", "ratio", "floor_gain", "peak_rss_mb"}


def test_bench_ingest_runs_at_a_tiny_size(pg_server: PostgresServer) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ingest.py"), "--events", "3000", "--events-per-line", "100",
         "--rss-lines", "2000", "--rounds", "2", "--batch-events", "500", "--database-url", pg_server.url],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert KEYS <= set(figures)
    assert figures["events"] == 3000 and figures["lines"] == 30 and figures["rss_lines"] == 2000
    assert all(figures[k] > 0 for k in KEYS)
    assert "ratio" in done.stderr and "floor gain" in done.stderr and "peak RSS" in done.stderr
