"""Revision 0100 where it cannot distribute: plain PostgreSQL (a no-op that says so) and a
Citus worker that is down during `upgrade` (one line naming the node, exit 2, nothing
distributed, `current` unchanged)."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import run_cli
from trackschema.citus import distribute
from trackschema.citus.layout import LAYOUT_0100
from trackschema.migrations import runner
from trackschema.runtime.provision import start_citus
from trackschema.testing.databases import Database

pytestmark = pytest.mark.xdist_group("citus")

NOOP = "0100_citus_distribution: not a Citus database (extension citus not installed): nothing to distribute"


def test_on_plain_postgresql_the_revision_is_a_noop_that_says_so(trackschema_db: Database) -> None:
    notices: list[str] = []
    with trackschema_db.connect() as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        tables = conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchone()
        rev = runner.script_directory().get_revision("0100_citus_distribution").module
        conn.execute(distribute.upgrade_sql(LAYOUT_0100, rev.revision, rows_function_file=rev.ROWS_FUNCTION_FILE))
        conn.execute(distribute.downgrade_sql(LAYOUT_0100, "0100_citus_distribution"))
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchone() == tables
    assert notices == [NOOP, NOOP]
    runner.downgrade(trackschema_db.settings, "0090_tracking_outbox")
    runner.upgrade(trackschema_db.settings, "head")
    offline = runner.upgrade(trackschema_db.settings.__class__(), "0090_tracking_outbox:head", sql=True)
    assert offline.sql and NOOP in offline.sql and "create_distributed_table('public.entities', 'id'" in offline.sql


def test_a_worker_down_during_upgrade_is_named_and_nothing_is_distributed() -> None:
    cluster = start_citus(1, fast=True)
    try:
        name = "trackschema_citus_down"
        url = cluster.create_database(name)
        env = {"TRACKSCHEMA_DATABASE_URL": url}
        assert run_cli("upgrade", "0090_tracking_outbox", env=env).returncode == 0
        worker = cluster.workers["worker1"]
        worker.stop()
        failed = run_cli("upgrade", "head", env=env)
        assert failed.returncode == 2, failed.stderr
        line = failed.stderr.strip()
        assert "\n" not in line and f"Citus worker 127.0.0.1:{worker.port} does not answer" in line, line
        assert "nothing was changed" in line
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pg_dist_partition").fetchone() == (0,)
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0090_tracking_outbox",)
    finally:
        cluster.destroy()
