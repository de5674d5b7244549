"""The audits on a Citus database (issue 20, part 3): the index audit reads index usage,
sizes and bloat from the shards on every node, not from the coordinator's empty shells,
and says how many shards it read."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.conftest import run_cli
from tests.observe import wait_until
from trackschema.audits.indexes import audit_indexes_on
from trackschema.runtime.provision import CitusCluster
from trackschema.testing.databases import Database

pytestmark = pytest.mark.xdist_group("citus")


def shard_scans(cluster: CitusCluster, db: Database, index: str) -> int:
    """idx_scan of `index`'s shards, read on each worker directly (not through the audit;
    Citus hides shards from the catalog views unless the session asks to see them)."""
    total = 0
    for name in cluster.workers:
        with psycopg.connect(cluster.node_url(name, db.name), autocommit=True) as conn:
            conn.execute("SET citus.show_shards_for_app_name_prefixes = '*'")
            total += conn.execute(
                "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname ~ %s", (f"^{index}_[0-9]+$",)
            ).fetchone()[0]  # type: ignore[index]
    return total


def test_index_scanned_on_the_shards_is_used_and_one_never_scanned_is_unused(
    trackschema_citus_cluster: CitusCluster, trackschema_citus_db: Database
) -> None:
    db = trackschema_citus_db
    with db.connect() as conn:
        conn.execute("CREATE TABLE views (user_code text NOT NULL, id bigint NOT NULL, kind text, path text, PRIMARY KEY (user_code, id))")
        conn.execute("CREATE INDEX views_kind ON views (kind)")
        conn.execute("CREATE INDEX views_path ON views (path)")
        conn.execute("SELECT create_distributed_table('views', 'user_code', shard_count => 4)")
        conn.execute("CREATE TABLE labels (code text PRIMARY KEY, label text)")
        conn.execute("CREATE INDEX labels_label ON labels (label)")
        conn.execute("CREATE INDEX labels_never ON labels (code, label)")
        conn.execute("SELECT create_reference_table('labels')")
        conn.execute("INSERT INTO views SELECT 'u' || g % 50, g, 'k' || g, '/p/' || g FROM generate_series(1, 2000) g")
        conn.execute("INSERT INTO labels SELECT 'c' || g, 'l' || g FROM generate_series(1, 2000) g")
        conn.execute("ANALYZE views")
        conn.execute("ANALYZE labels")
        before = {f.index for f in audit_indexes_on(conn, ["unused"])}
        assert {"public.views_kind", "public.views_path", "public.labels_label"} <= before  # nothing scanned yet

    # Scans through the coordinator: a multi-shard query on views (every shard uses views_kind:
    # sequential scans are off in the transaction, and on the shards through it) and a
    # reference-table lookup (served by one node's copy). Closing the connection ends the
    # worker sessions it opened, which flush their statistics.
    with db.connect(autocommit=False) as reader:
        reader.execute("SET LOCAL citus.propagate_set_commands = 'local'")
        reader.execute("SET LOCAL enable_seqscan = off")
        assert reader.execute("SELECT count(*) FROM views WHERE kind = 'k7'").fetchone() == (1,)
        assert reader.execute("SELECT count(*) FROM labels WHERE label = 'l9'").fetchone() == (1,)
        reader.commit()
    wait_until(lambda: shard_scans(trackschema_citus_cluster, db, "views_kind") >= 4, "the workers' shard statistics show views_kind's scans")

    with db.connect() as conn:
        wait_until(lambda: "public.labels_label" not in {f.index for f in audit_indexes_on(conn, ["unused"])},
                   "a reference table's scan counted from its placement")
        unused = {f.index: f for f in audit_indexes_on(conn, ["unused"])}
        # The coordinator's own statistics say nothing was scanned.
        coordinator = conn.execute("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'views_kind'").fetchone()
    assert coordinator == (0,)
    assert "public.views_kind" not in unused
    assert "public.views_path" in unused and "public.labels_never" in unused
    assert unused["public.views_path"].shards == 4
    assert "across 4 shards on 2 node(s)" in unused["public.views_path"].detail
    assert unused["public.labels_never"].shards == 3  # a copy on the coordinator and each worker
    assert unused["public.views_path"].fix == 'DROP INDEX CONCURRENTLY "public"."views_path";'

    result = run_cli("audit", "indexes", "--json", env={"TRACKSCHEMA_DATABASE_URL": db.url})
    assert result.returncode == 0, result.stderr
    found = {(f["kind"], f["index"]): f for f in json.loads(result.stdout)}
    assert found[("unused", "public.views_path")]["shards"] == 4
    assert ("unused", "public.views_kind") not in found
    assert found[("unused", "public.views_path")].keys() == {"kind", "table", "index", "detail", "fix", "shards"}
