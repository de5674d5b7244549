"""Smoke test: the matview benchmark runs end to end at a tiny size."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT
from trackschema.runtime.provision import PostgresServer


def test_benchmark_runs_at_a_tiny_size(pg_server: PostgresServer, capsys) -> None:  # noqa: ANN001
    spec = importlib.util.spec_from_file_location("bench_matview_refresh", ROOT / "benchmarks" / "bench_matview_refresh.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.main(["--rows", "3000", "--url", pg_server.url])
    assert set(figures) == {
        "reader_p50_concurrent_vs_quiet", "reader_p95_concurrent_vs_quiet", "reader_max_plain_vs_concurrent",
        "refresh_concurrent_vs_plain", "dashboard_raw_vs_view", "one_project_raw_vs_view",
    }
    assert all(value > 0 for value in figures.values())
    assert "during REFRESH CONCURRENTLY" in capsys.readouterr().out
