"""Smoke test: benchmarks/bench_fixture.py (the per-test set-up of `trackschema_db`) runs end
to end with --quick on the session's server. Its figures are machine speed: reported by the
benchmark, never asserted here."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import pytest

from tests.conftest import ROOT
from trackschema.runtime.provision import PostgresServer


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_fixture_quick_prints_its_figures_as_one_json_line(pg_server: PostgresServer, capsys: pytest.CaptureFixture[str]) -> None:
    figures = load("bench_fixture").main(["--quick", "--url", pg_server.url])
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == figures and list(figures) == ["fast"]
    fast = figures["fast"]
    assert fast["clones"] == 3 and fast["template_relations"] > 100
    for key in ("setup_file_copy", "setup_wal_log", "connect", "upgrade_head"):
        assert 0 < fast[key]["median_ms"] <= fast[key]["p95_ms"] <= fast[key]["max_ms"]
    assert any(line.startswith("[fast] set-up with FILE_COPY over 3 clones: median ") for line in lines)
