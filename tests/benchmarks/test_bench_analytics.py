"""Smoke test: the analytics benchmark runs end to end at a tiny size and reports every figure.

In-process (its `main`, as `python benchmarks/bench_analytics.py ARGS` runs it, with sys.argv
set), like the other benchmark smoke tests: a process start and its imports saved."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import ROOT
from trackschema.runtime.provision import PostgresServer


def test_bench_analytics_runs_at_a_tiny_size(pg_server: PostgresServer, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.path", list(sys.path))  # the benchmark puts src/ first; undone after the test
    spec = importlib.util.spec_from_file_location("bench_analytics", ROOT / "benchmarks" / "bench_analytics.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr("sys.argv", ["bench_analytics.py", "--raw-events", "6000", "--day-events", "2000",
                                     "--ingest-events", "2000", "--repeats", "1", "--json", "--database-url", pg_server.url])
    module.main()
    figures = json.loads(capsys.readouterr().out)
    assert figures["ingest"]["events"] == 2000
    assert all(figures["ingest"][k] > 0 for k in ("ingest_per_s", "plain_insert_per_s", "plain_server_insert_per_s", "copy_per_s", "schema_floor_per_s"))
    rollups = figures["rollups"]
    assert rollups["heavy_day_events"] == 2000 and rollups["aggregate_s"] > 0
    assert set(rollups["dashboards"]) == {"heaviest", "median"}
    assert all(d["rollup_p50_ms"] > 0 and d["raw_p50_ms"] > 0 for d in rollups["dashboards"].values())
