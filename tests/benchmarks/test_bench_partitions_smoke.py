"""A tiny run of benchmarks/bench_partitions.py, so it keeps working (figures not asserted,
except that nothing was lost and the table ended up partitioned)."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT
from trackschema.runtime.provision import PostgresServer


def test_bench_partitions_smoke(pg_server: PostgresServer, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TRACKSCHEMA_PARTITIONED_TABLES", "activity_log")
    spec = importlib.util.spec_from_file_location("bench_partitions", ROOT / "benchmarks" / "bench_partitions.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.main(["--rows", "3000", "--seconds", "0.2", "--rounds", "1", "--statements", "500", "--database-url", pg_server.url])
    assert figures["rows_lost_or_duplicated"] == 0 and figures["writer_errors"] == 0
    assert figures["downgrade_rows_lost_or_duplicated"] == 0
    assert figures["writer_longest_wait_s"] > 0 and figures["insert_ratio_fresh_batch"] > 0
    out = capsys.readouterr().out
    assert "writer's longest wait" in out and "ratio" in out
