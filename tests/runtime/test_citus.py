"""A local Citus cluster as a provisioning target (issue 20, part 1): the plugin's session
cluster (a coordinator and two workers) and its per-test databases, `sandbox start --citus
N` from start to stop, and a worker that cannot start. Nothing here skips: without Citus
the fixture fails with one line saying what to install (docs/citus.md#local-cluster)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_cli
from trackschema.errors import ProvisioningError
from trackschema.operations.inputs import InputError
from trackschema.operations.options import cli_label
from trackschema.runtime.provision import (
    CitusCluster,
    find_citus_bindir,
    find_pg_bindir,
    free_port,
    memory_dir,
)
from trackschema.runtime.sandbox import SandboxOptions
from trackschema.testing.databases import Database


pytestmark = pytest.mark.xdist_group("citus")  # one session cluster for every Citus test (--dist loadgroup)


def _processes_mentioning(path: str) -> list[str]:
    """Command lines of running processes that name `path` (a postmaster names its data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if path in cmdline:
            found.append(cmdline.strip())
    return found


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_session_cluster_has_a_coordinator_and_two_active_workers(trackschema_citus_cluster: CitusCluster) -> None:
    cluster = trackschema_citus_cluster
    assert list(cluster.nodes) == ["coordinator", "worker1", "worker2"]
    worker_ports = sorted(node.port for node in cluster.workers.values())
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        active = conn.execute("SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY node_port").fetchall()
        assert active == [("127.0.0.1", port) for port in worker_ports]
        assert str(conn.execute("SELECT citus_version()").fetchone()[0]).startswith("Citus 13.")  # type: ignore[index]
        coordinator = conn.execute("SELECT nodeport FROM pg_dist_node WHERE groupid = 0").fetchone()
        assert coordinator == (cluster.coordinator.port,)
    for name in cluster.nodes:
        with psycopg.connect(cluster.node_url(name), autocommit=True) as conn:
            assert conn.execute("SHOW shared_preload_libraries").fetchone() == ("citus",), name
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",), name


def test_a_distributed_table_has_shards_and_rows_on_both_workers(trackschema_citus_cluster: CitusCluster,
                                                                 trackschema_citus_db: Database) -> None:
    workers = {node.port for node in trackschema_citus_cluster.workers.values()}
    with trackschema_citus_db.connect() as conn:
        conn.execute("CREATE TABLE page_views (user_code text NOT NULL, viewed_at timestamptz NOT NULL DEFAULT now(), path text)")
        conn.execute("SELECT create_distributed_table('page_views', 'user_code')")
        conn.execute("INSERT INTO page_views (user_code, path) SELECT 'user-' || n, '/p/' || n FROM generate_series(1, 500) AS n")
        shards = dict(conn.execute(
            "SELECT nodeport, count(*) FROM citus_shards WHERE table_name = 'page_views'::regclass GROUP BY nodeport").fetchall())
        assert set(shards) == workers and sum(shards.values()) == 32  # citus.shard_count, none on the coordinator
        rows = dict(conn.execute(
            """SELECT s.nodeport, sum(r.result::bigint)
                 FROM run_command_on_shards('page_views', 'SELECT count(*) FROM %s') AS r
                 JOIN citus_shards AS s USING (shardid)
                GROUP BY s.nodeport""").fetchall())
        assert set(rows) == workers and all(count > 0 for count in rows.values()) and sum(rows.values()) == 500
        assert conn.execute("SELECT count(DISTINCT user_code) FROM page_views").fetchone() == (500,)


def test_a_reference_table_is_replicated_to_every_node(trackschema_citus_cluster: CitusCluster,
                                                       trackschema_citus_db: Database) -> None:
    cluster = trackschema_citus_cluster
    with trackschema_citus_db.connect() as conn:
        conn.execute("CREATE TABLE entity_types (code text PRIMARY KEY, label text NOT NULL)")
        conn.execute("SELECT create_reference_table('entity_types')")
        conn.execute("INSERT INTO entity_types VALUES ('contact', 'Contact'), ('address', 'Address'), ('note', 'Note')")
        placements = conn.execute(
            "SELECT shard_name, nodeport FROM citus_shards WHERE table_name = 'entity_types'::regclass ORDER BY nodeport").fetchall()
    assert sorted(port for _, port in placements) == sorted(node.port for node in cluster.nodes.values())
    shard = placements[0][0]
    for name in cluster.nodes:  # the test's database is on each node, with the extension and the whole table
        with psycopg.connect(cluster.node_url(name, trackschema_citus_db.name), autocommit=True) as conn:
            assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'citus'").fetchone() == ("citus",), name
            assert conn.execute(f'SELECT string_agg(code, \',\' ORDER BY code) FROM "{shard}"').fetchone() == ("address,contact,note",), name


@pytest.fixture
def sandbox_home(tmp_path: Path) -> Iterator[Path]:
    """A sandbox directory the `postgres` user can reach, in memory where there is room
    (initdb and the first checkpoint of three nodes: about 1.5 s less than on disk)."""
    memory = memory_dir()
    parent = Path(tempfile.mkdtemp(prefix="trackschema-test-sandbox-", dir=memory)) if memory else tmp_path
    parent.chmod(0o755)
    yield parent / "sandbox"
    if memory:
        shutil.rmtree(parent, ignore_errors=True)


def test_sandbox_start_citus_url_stop_leaves_no_process_and_no_directory(sandbox_home: Path) -> None:
    env = {"TRACKSCHEMA_SANDBOX_DIR": str(sandbox_home)}
    started = run_cli("sandbox", "start", "--citus", "2", "--json", env=env)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    nodes = info["nodes"]
    try:
        assert info["kind"] == "citus" and info["created"]
        assert [(n["name"], n["role"]) for n in nodes] == [("coordinator", "coordinator"), ("worker1", "worker"), ("worker2", "worker")]
        assert info["url"] == nodes[0]["url"]
        with psycopg.connect(info["url"], autocommit=True) as conn:
            active = conn.execute("SELECT node_port FROM citus_get_active_worker_nodes() ORDER BY 1").fetchall()
        assert active == sorted((n["port"],) for n in nodes[1:])
        other = run_cli("sandbox", "start", "--citus", "1", env=env)  # another shape while this one runs: refused
        assert other.returncode == 2 and "already running (a Citus cluster with 2 worker(s)" in other.stderr, other.stderr
        assert run_cli("sandbox", "url", env=env).stdout.strip() == info["url"]
    finally:
        stopped = run_cli("sandbox", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    for node in nodes:
        assert not Path(node["directory"]).exists(), node
        assert not _accepts(node["port"]), node
        assert _processes_mentioning(node["directory"]) == [], node
    assert not Path(nodes[0]["directory"]).parent.exists()  # the cluster's own directory
    assert not sandbox_home.exists()


def test_the_worker_count_is_checked_before_anything_starts() -> None:
    assert SandboxOptions.from_params({"citus": "2"}, label=cli_label).citus == 2
    for bad in ("0", "9", "two"):
        with pytest.raises(InputError, match=rf"^bad --citus '{bad}': give a whole number from 1 to 8$"):
            SandboxOptions.from_params({"citus": bad}, label=cli_label)
    with pytest.raises(ProvisioningError, match="1 to 8 workers, not 0"):
        CitusCluster(Path("/nonexistent"), 0)


def test_a_worker_that_cannot_start_is_named_in_one_line_and_nothing_is_left_running() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = [free_port()]
        while len(ports) < 2:
            port = free_port()
            if port not in ports:
                ports.append(port)
        ports.append(busy)
        cluster = CitusCluster(find_citus_bindir(), 2, ports=ports, in_memory=True)
        with pytest.raises(ProvisioningError) as caught:
            cluster.start()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"Citus worker2 did not start on 127.0.0.1:{busy}: ") and "already in use" in message, message
    assert cluster.base_dir is not None and not cluster.base_dir.exists()
    assert _processes_mentioning(str(cluster.base_dir)) == []
    for port in ports[:2]:
        assert not _accepts(port)


def test_without_citus_a_test_that_needs_it_errors_in_one_line_and_never_skips(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_pg_bindir()
    assert real is not None
    bindir = tmp_path / "bin"  # the same server binaries, in a tree with no extensions
    bindir.mkdir()
    for name in ("initdb", "pg_ctl", "postgres"):
        os.symlink(real / name, bindir / name)
    monkeypatch.setenv("TRACKSCHEMA_PG_BINDIR", str(bindir))
    with pytest.raises(ProvisioningError) as caught:
        find_citus_bindir()
    message = str(caught.value)
    assert "\n" not in message and message.startswith("Citus is not installed (PostgreSQL 15")
    assert "../shared/citus/install" in message and "./run" in message

    suite = tmp_path / "suite"  # an application's suite: its own rootdir, the plugin from the entry point
    suite.mkdir()
    (suite / "test_app.py").write_text("def test_on_citus(trackschema_citus_db):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKSCHEMA_")} | {"TRACKSCHEMA_PG_BINDIR": str(bindir)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", str(suite)],
                          capture_output=True, text=True, timeout=120, cwd=suite, env=env, check=False)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 error" in done.stdout and "skipped" not in done.stdout
    assert f"trackschema: no Citus cluster for the tests: {message}" in done.stdout
