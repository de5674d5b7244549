"""Smoke test: bench_ingest runs end to end at a tiny size and ends with its JSON line.

In-process (its `main`, as `python benchmarks/bench_ingest.py ARGS` runs it, with sys.argv
set); the peak-RSS part still runs `trackschema ingest` in a process of its own."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import ROOT
from trackschema.runtime.provision import PostgresServer

KEYS = {"ingest_events_per_s", "floor_events_per_s", "ratio", "floor_gain", "peak_rss_mb"}


def test_bench_ingest_runs_at_a_tiny_size(pg_server: PostgresServer, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.path", list(sys.path))  # the benchmark puts src/ first; undone after the test
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "benchmarks" / "bench_ingest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr("sys.argv", ["bench_ingest.py", "--events", "3000", "--events-per-line", "100",
                                     "--rss-lines", "2000", "--rounds", "2", "--batch-events", "500", "--database-url", pg_server.url])
    module.main()
    done = capsys.readouterr()
    last = done.out.strip().splitlines()[-1]
    figures = json.loads(last)
    assert KEYS <= set(figures)
    assert figures["events"] == 3000 and figures["lines"] == 30 and figures["rss_lines"] == 2000
    assert all(figures[k] > 0 for k in KEYS)
    assert "ratio" in done.err and "floor gain" in done.err and "peak RSS" in done.err
