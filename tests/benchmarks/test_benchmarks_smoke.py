"""A tiny run of each benchmark, so they keep working (figures are not asserted here)."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT


def load(name: str):  # noqa: ANN201
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_upgrade_smoke(capsys) -> None:  # noqa: ANN001
    figures = load("bench_upgrade").main(["--repeat", "1"])
    assert figures["revisions"] >= 1 and figures["upgrade_head_s"] > 0
    assert "ratio upgrade head / CREATE DATABASE" in capsys.readouterr().out


def test_bench_audit_smoke(capsys) -> None:  # noqa: ANN001
    figures = load("bench_audit").main(["--tables", "3", "--indexes-per-table", "4", "--repeat", "1"])
    assert figures["indexes"] >= 3 * 5 and figures["findings"] > 0
    assert "ratio audit / baseline" in capsys.readouterr().out
