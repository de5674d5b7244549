"""`trackschema status` on Citus (issue 20, part 3): the Citus version and every node
(role, active, shard placements, the database's size there); the largest tables with
their shards' rows and sizes. On plain PostgreSQL the page has no Citus section."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from trackschema.runtime.provision import CitusCluster
from trackschema.testing.databases import Database

pytestmark = pytest.mark.xdist_group("citus")


def test_status_lists_the_nodes_and_the_citus_version(trackschema_citus_cluster: CitusCluster, citus_head: Database) -> None:
    env = {"TRACKSCHEMA_DATABASE_URL": citus_head.url}
    result = run_cli("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    citus = json.loads(result.stdout)["citus"]
    assert citus["version"].startswith("13.")
    cluster = trackschema_citus_cluster
    expected = [(f"127.0.0.1:{cluster.coordinator.port}", "coordinator")] + sorted(
        (f"127.0.0.1:{node.port}", "worker") for node in cluster.workers.values())
    nodes = citus["nodes"]
    assert sorted((n["node"], n["role"]) for n in nodes) == sorted(expected)
    assert all(n["active"] and n["error"] is None and n["database_bytes"] > 0 for n in nodes)
    # Distributed tables' shards are on the workers only; the coordinator holds reference-table copies.
    workers = [n for n in nodes if n["role"] == "worker"]
    assert all(n["shards"] > 0 for n in workers)
    with citus_head.connect() as conn:
        placements = conn.execute("SELECT count(*) FROM pg_dist_placement").fetchone()[0]  # type: ignore[index]
    assert sum(n["shards"] for n in nodes) == placements
    assert citus["outbox_distributed"] is True
    assert json.loads(result.stdout)["queue"] is None  # the consumers are refused here (queue work/status)

    human = run_cli("status", env=env)
    assert human.returncode == 0, human.stderr
    assert "Citus 13." in human.stdout and "2 worker(s)" in human.stdout
    assert all(node in human.stdout for node, _ in expected)


def test_largest_tables_count_the_rows_on_the_shards(trackschema_citus_db: Database) -> None:
    with trackschema_citus_db.connect() as conn:
        conn.execute("CREATE TABLE big (k int NOT NULL, v text)")
        conn.execute("SELECT create_distributed_table('big', 'k', shard_count => 4)")
        conn.execute("CREATE TABLE codes (code int PRIMARY KEY)")
        conn.execute("SELECT create_reference_table('codes')")
        conn.execute("INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g")
        conn.execute("INSERT INTO codes SELECT generate_series(1, 100)")
        conn.execute("ANALYZE big")
        conn.execute("ANALYZE codes")
        shell = conn.execute("SELECT pg_total_relation_size('big')").fetchone()[0]  # type: ignore[index]
    result = run_cli("status", "--json", env={"TRACKSCHEMA_DATABASE_URL": trackschema_citus_db.url})
    assert result.returncode == 0, result.stderr
    tables = {t["table"]: t for t in json.loads(result.stdout)["largest_tables"]}
    assert tables["big"]["rows_estimate"] == 3000
    assert tables["big"]["total_bytes"] > 3000 * 200 > shell
    assert tables["codes"]["rows_estimate"] == 100  # one copy per node, counted once


def test_plain_postgresql_status_has_no_citus_section(db_url: str) -> None:
    result = run_cli("status", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    assert "citus" not in json.loads(result.stdout)
