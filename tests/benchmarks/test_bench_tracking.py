"""Smoke test: the tracking and queue benchmarks run end to end at a tiny size (figures
are not asserted: they are for the real-size run; `--quick` is the user's smoke size)."""

from __future__ import annotations

import importlib.util
import json
import math
from types import ModuleType

from tests.conftest import ROOT
from trackschema.runtime.provision import PostgresServer


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_tracking_runs_at_a_tiny_size(pg_server: PostgresServer, capsys) -> None:  # noqa: ANN001
    figures = load("bench_tracking").main(["--rows", "300", "--single", "20", "--repeat", "1", "--consumer-events", "700",
                                           "--lag-rate", "500", "--lag-seconds", "0.5", "--database-url", pg_server.url])
    # every measured time, rate and ratio is positive; the index shares and the capture's
    # cost are differences of two timings divided by a third, which at this size the
    # machine's noise can make any number (one run under load went past -1): they must only
    # be computed
    shares = {"xid_index_share_of_inserts", "entity_index_share_of_inserts", "capture_vs_no_triggers"}
    assert figures["rows"] == 300 and all(v > 0 for k, v in figures.items() if k not in shares)
    assert all(isinstance(figures[k], float) and math.isfinite(figures[k]) for k in shares)
    # 3 bulk updates of 300 rows (one tracked; the one before the after-bulk round is rolled
    # back) + 2 x 20 tracked single-row updates + 20 after the bulk one: one event per change
    assert figures["events_written"] == 300 + 40 + 20
    assert figures["consumer_events"] == 700 and figures["lag_events"] >= 10
    lines = capsys.readouterr().out.strip().splitlines()
    assert "tracked: one entity_events row per change" in "\n".join(lines) and "end-to-end lag" in "\n".join(lines)
    summary = json.loads(lines[-1])  # the run ends with one JSON line
    assert set(summary) == {"bulk_ratio", "floor_ratio", "single_ratio", "consumer_events_per_s", "lag_p99_s"}
    assert summary["bulk_ratio"] == round(figures["bulk_ratio"], 4)


def test_bench_queue_runs_at_a_tiny_size(pg_server: PostgresServer, capsys) -> None:  # noqa: ANN001
    figures = load("bench_queue").main(["--events", "300", "--batch", "50", "--repeat", "1", "--database-url", pg_server.url])
    assert figures["two_workers_per_s"] > 0 and figures["two_consumers_per_s"] > 0 and figures["baseline_read_per_s"] > 0
    assert figures["goal_events_written"] == 60
    assert "2 workers of one consumer" in capsys.readouterr().out
