"""The commands on the distributed schema (issue 20, part 3), through the coordinator of a
Citus database at head (`citus_head`, shared: every test uses user codes and rows of its
own): ingest and the daily roll-up give the same figures as one node for the same input,
and so does the dashboard; partitions list and ensure; the index audit reads the shards;
the materialized-view refresh says which view Citus cannot refresh; the outbox consumers
refuse a distributed entity_events in one line."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import run_cli
from trackschema.analytics.matviews import matview_status
from trackschema.analytics.sample import sample_events
from trackschema.testing.databases import Database

pytestmark = pytest.mark.xdist_group("citus")

DAILY = """SELECT user_code, date, total_sessions, total_page_views, total_clicks, unique_share_codes FROM analytics_daily_user_stats
            WHERE user_code LIKE %s ORDER BY user_code, date"""


def _server_now(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


def _write_sample(path: Path, prefix: str, now: datetime) -> None:
    """Three days of a few users' traffic, user codes and session ids under `prefix`."""
    lines, batch = [], []
    for event in sample_events(now=now, users=3, days=3, sessions_per_day=12, prefix=prefix):
        data = dict(event["data"], user_code=f"{prefix}-{event['data']['user_code']}")
        batch.append({**event, "data": data})
        if len(batch) == 50:
            lines.append(json.dumps({"events": batch}))
            batch = []
    lines.append(json.dumps({"events": batch}))
    path.write_text("\n".join(lines) + "\n")


def _ingest_and_roll_up(url: str, source: Path, prefix: str) -> tuple[dict[str, Any], list[tuple[Any, ...]], dict[str, Any]]:
    env = {"TRACKSCHEMA_DATABASE_URL": url}
    ingested = run_cli("ingest", str(source), "--json", env=env)
    assert ingested.returncode == 0, ingested.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        first = conn.execute("SELECT min(first_seen)::date FROM analytics_sessions WHERE user_code LIKE %s", (f"{prefix}-%",)).fetchone()[0]  # type: ignore[index]
    rolled = run_cli("jobs", "run", "aggregate-daily", "--param", f"since={first}", env=env)
    assert rolled.returncode == 0, rolled.stderr + rolled.stdout
    with psycopg.connect(url, autocommit=True) as conn:
        daily = conn.execute(DAILY, (f"{prefix}-%",)).fetchall()
    dashboard = run_cli("analytics", "dashboard", f"{prefix}-user1", "--json", "--days", "3", env=env)
    assert dashboard.returncode == 0, dashboard.stderr
    summary = json.loads(ingested.stdout)
    return {k: v for k, v in summary.items() if k not in {"seconds", "source", "events_per_second"}}, daily, json.loads(dashboard.stdout)


def test_ingest_roll_up_and_dashboard_give_the_figures_of_one_node(citus_head: Database, db_url: str, tmp_path: Path) -> None:
    prefix = f"cmd{uuid.uuid4().hex[:8]}"
    source = tmp_path / "events.jsonl"
    _write_sample(source, prefix, _server_now(citus_head.url))
    on_citus = _ingest_and_roll_up(citus_head.url, source, prefix)
    on_one_node = _ingest_and_roll_up(db_url, source, prefix)
    assert on_citus[0]["accepted"] > 0 and on_citus[0]["rejected"] == 0
    assert on_citus[1], "the roll-up produced rows"
    assert any(day["source"] != "raw" for day in on_one_node[2]["days"])  # closed days come from the roll-ups
    assert on_citus[0] == on_one_node[0]  # the ingest summary: events, sessions, rejects
    assert on_citus[1] == on_one_node[1]  # analytics_daily_user_stats, row by row
    assert on_citus[2] == on_one_node[2]  # the dashboard


def test_partitions_list_and_ensure_through_the_coordinator(citus_head: Database) -> None:
    env = {"TRACKSCHEMA_DATABASE_URL": citus_head.url}
    listed = run_cli("partitions", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    parents = {p["parent"] for p in json.loads(listed.stdout)}
    assert {"entity_events", "activity_log"} <= parents  # distributed partitioned tables, seen at the coordinator
    ensured = run_cli("partitions", "ensure", "--json", env=env)
    assert ensured.returncode == 0, ensured.stderr
    assert json.loads(ensured.stdout) == []  # the months ahead exist already: nothing to make


def test_audit_indexes_on_head_reads_the_shards(citus_head: Database) -> None:
    result = run_cli("audit", "indexes", "--json", env={"TRACKSCHEMA_DATABASE_URL": citus_head.url})
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    with citus_head.connect() as conn:
        shards = conn.execute("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'public.entities'::regclass").fetchone()[0]  # type: ignore[index]
    on_entities = [f for f in findings if f["table"] == "public.entities" and f["index"]]
    assert on_entities and all(f["shards"] == shards for f in on_entities)
    local = [f for f in findings if f["table"] == "public.roadmap_items"]
    assert all("shards" not in f for f in local)  # a local table's figures are the coordinator's own


def test_matview_refresh_names_the_view_citus_cannot_refresh_and_refreshes_the_others(citus_head: Database) -> None:
    env = {"TRACKSCHEMA_DATABASE_URL": citus_head.url}
    result = run_cli("jobs", "run", "refresh-matviews", env=env)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "1 of 3 views failed (public.contact_management_view: 0A000:" in message
    assert "Citus cannot run this view's query across shards" in message and "docs/citus.md#materialized-views" in message
    with citus_head.connect() as conn:
        views = {v.view: v for v in matview_status(conn) if v.registered}
    assert len(views) == 3
    failed = next(name for name in views if name.endswith("contact_management_view"))
    assert all(v.refreshed_at is not None for name, v in views.items() if name != failed)  # the other two were refreshed
    assert "0A000" in (views[failed].last_error or "")


def test_queue_work_and_status_refuse_a_distributed_outbox(citus_head: Database) -> None:
    env = {"TRACKSCHEMA_DATABASE_URL": citus_head.url}
    with citus_head.connect() as conn:
        consumers = conn.execute("SELECT count(*) FROM trackschema.consumers").fetchone()
    for command in (("queue", "work", "--once", "--consumer", f"c{uuid.uuid4().hex[:8]}"), ("queue", "status")):
        result = run_cli(*command, env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        message = " ".join(result.stderr.split())
        assert f"{command[0]} {command[1]} refused: entity_events is distributed" in message
        assert "docs/citus.md#outbox" in message
    with citus_head.connect() as conn:
        assert conn.execute("SELECT count(*) FROM trackschema.consumers").fetchone() == consumers  # nothing registered


def test_backfill_run_progress_rejects_and_a_rerun_through_the_coordinator(citus_head: Database) -> None:
    from tests.promotion_helpers import BAD_VALUES, load_legacy_rows, unfilled

    env = {"TRACKSCHEMA_DATABASE_URL": citus_head.url}
    with citus_head.connect() as conn:
        load_legacy_rows(conn, 400)
    ran = run_cli("backfill", "run", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    progress = run_cli("backfill", "progress", "--json", env=env)
    assert progress.returncode == 0, progress.stderr
    by_name = {p["name"]: p for p in json.loads(progress.stdout)}
    assert by_name["source_type"]["filled"] > 0 and by_name["source_type"]["null_rate"] == 0.0
    rejects = run_cli("backfill", "rejects", "source_type", "--json", env=env)
    assert rejects.returncode == 0, rejects.stderr
    assert len(json.loads(rejects.stdout)) >= sum(1 for _, promotion, _ in BAD_VALUES if promotion == "source_type")
    with citus_head.connect() as conn:
        assert unfilled(conn) == 0
    again = run_cli("backfill", "run", "--json", env=env)  # resumable: a rerun finds nothing left to do
    assert again.returncode == 0, again.stderr
    assert all(t["rows_done"] == 0 for t in json.loads(again.stdout)["tables"]), again.stdout
