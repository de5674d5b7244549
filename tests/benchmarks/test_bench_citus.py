"""Smoke test: bench_citus measures at a tiny size on the session's Citus cluster and the
session's server (no cluster of its own), and its figures are complete and consistent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trackschema.citus.layout_0101 import LAYOUT_HEAD
from trackschema.runtime.provision import CitusCluster, PostgresServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_citus  # noqa: E402

KEYS = {"ingest_events_per_s_citus", "ingest_events_per_s_single", "ratio", "dashboard_ms_citus", "dashboard_ms_single",
        "upgrade_head_s_citus"}

pytestmark = pytest.mark.xdist_group("citus")


def test_bench_citus_measures_both_sides_at_a_tiny_size(pg_server: PostgresServer,
                                                        trackschema_citus_cluster: CitusCluster) -> None:
    lines: list[str] = []
    figures = bench_citus.measure(pg_server.url, trackschema_citus_cluster, events=1500, days=2, per_line=50,
                                  dashboards=2, repeats=1, shard_count=4, report=lines.append)
    assert KEYS <= set(figures)
    assert figures["events"] == 1500 and figures["workers"] == 2 and figures["shard_count"] == 4
    assert all(float(figures[k]) > 0 for k in KEYS)  # type: ignore[arg-type]
    placed = [p for p in LAYOUT_HEAD if p.kind != "local"]
    assert figures["analytics_distributed"] is True  # the ingest and the dashboards ran on shards
    assert int(figures["distributed_tables"]) >= len(placed)  # type: ignore[call-overload]  # partitions come on top
    assert any(line.startswith("roll-up:") and "the same figures" in line for line in lines)
    assert any(line.startswith("ingest:") for line in lines)
