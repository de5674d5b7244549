"""Revision 0101_citus_analytics on a coordinator and two workers (docs/citus.md#analytics):
the analytics tables where `LAYOUT_0101` declares them; the same input ingested on Citus and
on one node gives the same rows, rejects, session counters, roll-ups, dashboard and
retention figures; the reader policies isolate user codes on the shards; head -> 0100 ->
head keeps rows and schema. Tests on `citus_head` use user codes of their own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import run_cli
from trackschema.analytics import dashboard, rollups
from trackschema.analytics.ingest import ingest_batch
from trackschema.analytics.sample import sample_events
from trackschema.citus import analytics
from trackschema.citus.analytics import POLICY_0101, TRIGGERS
from trackschema.citus.layout_0101 import (
    LAYOUT_0101,
    RAW_TABLES,
    ROLLUP_TABLES,
    SESSIONS,
)
from trackschema.migrations import runner
from trackschema.runtime.provision import CitusCluster
from trackschema.schema.catalog import snapshot_on
from trackschema.testing.databases import Database, citus_database

pytestmark = pytest.mark.xdist_group("citus")

LIKE = "user_code LIKE %(p)s"
ROWS = {
    "analytics_sessions": "SELECT session_id, user_code, share_code, contact_id, first_seen, last_seen, page_views, clicks, "
                          "ip_address, user_agent, referrer FROM analytics_sessions WHERE {like} ORDER BY 1, 2",
    "analytics_page_views": "SELECT session_id, user_code, share_code, page_type, viewed_at FROM analytics_page_views "
                            "WHERE {like} ORDER BY 1, 2, 5, 4",
    "analytics_clicks": "SELECT session_id, user_code, share_code, click_target, click_category, clicked_at FROM analytics_clicks "
                        "WHERE {like} ORDER BY 1, 2, 6, 4",
    "analytics_daily_user_stats": "SELECT user_code, date, total_sessions, total_page_views, total_clicks, unique_share_codes "
                                  "FROM analytics_daily_user_stats WHERE {like} ORDER BY 1, 2",
    "analytics_daily_group_stats": "SELECT user_code, share_code, date, total_sessions, total_page_views, total_clicks "
                                   "FROM analytics_daily_group_stats WHERE {like} ORDER BY 1, 2, 3",
    "analytics_daily_page_stats": "SELECT user_code, share_code, date, page_type, view_count FROM analytics_daily_page_stats "
                                  "WHERE {like} ORDER BY 1, 2, 3, 4",
    "analytics_daily_click_targets": "SELECT user_code, share_code, date, click_target, click_category, click_count "
                                     "FROM analytics_daily_click_targets WHERE {like} ORDER BY 1, 2, 3, 4",
}
REJECTS = """SELECT event_index, event_type, reason, event::jsonb FROM trackschema.analytics_ingest_rejects
              WHERE event LIKE %(e)s ORDER BY event_index, reason, event"""


def _server_now(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT now()").fetchone()[0].astimezone(UTC)  # type: ignore[index]


def _lines(prefix: str, now: datetime) -> list[str]:
    """Three days of traffic of three users (codes and sessions under `prefix`), 40 events a
    line, every 23rd event spoiled, and the first line sent again (duplicates)."""
    events = []
    for n, event in enumerate(sample_events(now=now, users=3, days=3, sessions_per_day=8, prefix=prefix), start=1):
        data = dict(event["data"], user_code=f"{prefix}-{event['data']['user_code']}")
        if n % 23 == 0:
            data.pop("page_type", None) if event["type"] == "page_view" else data.update(first_seen="not a time", clicked_at="x")
        events.append({**event, "data": data})
    lines = [json.dumps({"events": events[i:i + 40]}) for i in range(0, len(events), 40)]
    return lines + lines[:1]


def _late_line(prefix: str, now: datetime) -> str:
    """A page view of the first session of the sample's middle day, a day earlier than its
    session started: the session's first_seen moves to an earlier day (both days stale)."""
    day = (now - timedelta(days=1)).strftime("%Y%m%d")
    first = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2, seconds=-60)
    with_session = next(e for e in sample_events(now=now, users=3, days=3, sessions_per_day=8, prefix=prefix)
                    if e["data"]["session_id"] == f"{prefix}-{day}-0")
    data = {"session_id": with_session["data"]["session_id"], "user_code": f"{prefix}-{with_session['data']['user_code']}",
            "page_type": "home", "viewed_at": first.isoformat()}
    return json.dumps({"events": [{"type": "page_view", "data": data}]})


def _figures(url: str, prefix: str) -> dict[str, Any]:
    like = {"p": f"{prefix}-%", "e": f"%{prefix}-%"}
    with psycopg.connect(url, autocommit=True) as conn:
        figures: dict[str, Any] = {t: conn.execute(sql.SQL(q.format(like=LIKE)), like).fetchall() for t, q in ROWS.items()}
        figures["rejects"] = conn.execute(REJECTS, like).fetchall()
        today = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]  # type: ignore[index]
        for user in ("user1", "user2"):
            figures[f"dashboard {user}"] = dashboard.dashboard(conn, f"{prefix}-{user}", today - timedelta(days=3), today)
    return figures


def _ingest(url: str, prefix: str, lines: list[str], late: str, tmp_path: Path) -> dict[str, Any]:
    """The streaming ingest (the CLI, in-process) of `lines`, then the batch API
    (analytics_ingest) for `late`, then the daily roll-up of every pending day."""
    source = tmp_path / f"{prefix}-{abs(hash(url))}.jsonl"
    source.write_text("\n".join(lines) + "\n")
    ingested = run_cli("ingest", str(source), "--json", env={"TRACKSCHEMA_DATABASE_URL": url})
    assert ingested.returncode == 0, ingested.stderr
    summary = {k: v for k, v in json.loads(ingested.stdout).items() if k not in {"seconds", "source", "events_per_second"}}
    with psycopg.connect(url, autocommit=True) as conn:
        late_result = ingest_batch(conn, late)
        summary["late"] = (late_result.accepted, late_result.rejected)
        rollups.aggregate_pending(conn)
    return summary


def test_the_analytics_tables_are_placed_as_declared(citus_head: Database) -> None:
    with citus_head.connect() as conn:
        found = {t: (m, c, g) for t, m, c, g in conn.execute(
            """SELECT logicalrelid::regclass::text, partmethod, column_to_column_name(logicalrelid, partkey), colocationid
                 FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE 'analytics%'""").fetchall()}
        group = found[SESSIONS.removeprefix("public.")][2]
        for placement in LAYOUT_0101:
            method, column, colocation = found[placement.table.removeprefix("public.")]
            if placement.kind == "reference":
                assert (method, column) == ("n", None), placement.table
            else:
                assert (method, column, colocation) == ("h", "user_code", group), placement.table
        # the legacy tables stay local
        assert not any(t.startswith("analytics_events") for t in found)
        keys = dict(conn.execute("""SELECT conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) FROM pg_constraint
                                     WHERE conrelid = ANY ('{analytics_sessions,analytics_page_views,analytics_clicks}'::regclass[])
                                       AND contype IN ('p', 'f')""").fetchall())
        assert keys["analytics_sessions.analytics_sessions_pkey"] == "PRIMARY KEY (user_code, session_id)"
        assert keys["analytics_clicks.analytics_clicks_session_id_fkey"] == (
            "FOREIGN KEY (user_code, session_id) REFERENCES analytics_sessions(user_code, session_id) ON DELETE CASCADE")
        policies = dict(conn.execute("SELECT tablename, qual FROM pg_policies WHERE policyname = 'analytics_reader_own'").fetchall())
        assert {policies[t.removeprefix("public.")] for t in RAW_TABLES + ROLLUP_TABLES} == {POLICY_0101[1:-1]}
        triggers = {name for _, name, _ in TRIGGERS}
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = ANY (%s)", (list(triggers),)).fetchone() == (0,)
        # the policy functions exist on every worker
        assert conn.execute("""SELECT array_agg(result ORDER BY nodeport) FROM run_command_on_workers(
                                 $$SELECT count(*) FROM pg_proc WHERE proname IN ('analytics_may_read', 'analytics_role_usable')$$)"""
                            ).fetchone() == (["2", "2"],)


def test_ingest_roll_up_dashboard_and_retention_give_the_figures_of_one_node(
        citus_head: Database, trackschema_db: Database, tmp_path: Path) -> None:
    prefix = f"an{uuid.uuid4().hex[:8]}"
    now = _server_now(citus_head.url)
    lines, late = _lines(prefix, now), _late_line(prefix, now)
    on_citus = _ingest(citus_head.url, prefix, lines, late, tmp_path)
    on_one_node = _ingest(trackschema_db.url, prefix, lines, late, tmp_path)
    assert on_citus == on_one_node  # events, accepted, duplicates, rejects as the client saw them
    assert on_citus["rejected"] > 0 and on_citus["duplicates"] > 0 and on_citus["late"] == (1, 0)
    citus, one_node = _figures(citus_head.url, prefix), _figures(trackschema_db.url, prefix)
    for name in one_node:
        assert citus[name] == one_node[name], name
    assert one_node["analytics_daily_user_stats"] and one_node["analytics_page_views"]
    # the late page view moved its session's first_seen a day back (both days rolled up again: equal above)
    moved = f"{prefix}-{(now - timedelta(days=1)):%Y%m%d}-0"
    assert [r[4].date() for r in one_node["analytics_sessions"] if r[0] == moved] == [(now - timedelta(days=2)).date()]


def test_the_purge_of_retention_removes_the_same_rows(citus_head: Database, trackschema_db: Database) -> None:
    """analytics_purge_raw_batch v2 (by key, not ctid) against v1: traffic of 2001 (no other
    test has rows that old), purged below a horizon set for the call and put back after."""
    prefix = f"pg{uuid.uuid4().hex[:8]}"
    now = datetime.fromisoformat("2001-06-01T12:00:00+00:00")
    lines = _lines(prefix, now)[:-1]
    cutoff = datetime.fromisoformat("2001-05-31T06:00:00+00:00")
    results = {}
    for url in (citus_head.url, trackschema_db.url):
        with psycopg.connect(url, autocommit=True) as conn:
            for line in lines:
                assert ingest_batch(conn, line).accepted > 0
            before = _figures(url, prefix)
            with conn.transaction():
                saved = conn.execute("SELECT accept_from, purged_before FROM trackschema.analytics_raw_horizon").fetchone()
                conn.execute("INSERT INTO trackschema.analytics_raw_horizon (purged_before) VALUES (%s) "
                             "ON CONFLICT (singleton) DO UPDATE SET purged_before = EXCLUDED.purged_before", (cutoff,))
                deleted = [conn.execute("SELECT * FROM analytics_purge_raw_batch(%s, 25)", (cutoff,)).fetchone() for _ in range(6)]
                if saved is None:
                    conn.execute("DELETE FROM trackschema.analytics_raw_horizon")
                else:
                    conn.execute("UPDATE trackschema.analytics_raw_horizon SET accept_from = %s, purged_before = %s", saved)
            results[url] = (before, _figures(url, prefix), deleted)
    citus, one_node = results[citus_head.url], results[trackschema_db.url]
    for name in ROWS:
        assert citus[1][name] == one_node[1][name], name
    assert citus[2] == one_node[2] and citus[2][-1] == (0, 0, 0)  # batch by batch, then nothing left
    assert len(one_node[1]["analytics_page_views"]) < len(one_node[0]["analytics_page_views"])
    assert all(r[4] >= cutoff for r in one_node[1]["analytics_page_views"])


@pytest.fixture
def reader_roles(citus_head: Database) -> Iterator[dict[str, str]]:
    """Login roles of this test, created through the coordinator (Citus creates them, and
    their memberships, on the workers): two readers of the history's reader role, and a team
    role one of them is a member of."""
    suffix = uuid.uuid4().hex[:8]
    names = {k: f"ts_{k}_{suffix}" for k in ("alice", "bob", "team")}
    with citus_head.connect() as conn:
        reader = conn.execute("SELECT role_name FROM trackschema.analytics_roles WHERE purpose = 'reader'").fetchone()[0]  # type: ignore[index]
        for name in names.values():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT {} TO {}, {}").format(sql.Identifier(reader), sql.Identifier(names["alice"]), sql.Identifier(names["bob"])))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(names["team"]), sql.Identifier(names["bob"])))
    yield names
    with citus_head.connect() as conn:
        conn.execute("DELETE FROM analytics_user_code_owners WHERE role_name = ANY (%s)", (list(names.values()),))
        for name in names.values():
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


WORKERS_OF_CODES = """SELECT count(DISTINCT n.nodeport) FROM pg_dist_shard s
                         JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
                        WHERE s.logicalrelid = 'analytics_page_views'::regclass
                          AND s.shardid = ANY (ARRAY(SELECT get_shard_id_for_distribution_column('analytics_page_views', c)
                                                      FROM unnest(%s::text[]) AS c))"""


def _codes_on_both_workers(conn: psycopg.Connection) -> tuple[str, dict[str, str]]:
    """A fresh prefix whose three user codes hash to shards on both workers (a random
    prefix puts all three on one worker one time in four): the first of 64 candidates."""
    for _ in range(64):
        prefix = f"rls{uuid.uuid4().hex[:8]}"
        codes = {u: f"{prefix}-{u}" for u in ("user1", "user2", "user3")}
        if conn.execute(WORKERS_OF_CODES, (list(codes.values()),)).fetchone() == (2,):
            return prefix, codes
    raise AssertionError("no prefix in 64 put the three user codes on both workers: is a worker's shard placement missing?")


def test_readers_see_only_their_user_codes_on_the_shards(citus_head: Database, reader_roles: dict[str, str]) -> None:
    """The probe of tests/analytics/test_analytics_rls.py through the coordinator: every query
    below reads shards on both workers, as the reader (Citus connects to them as that role)."""
    now = _server_now(citus_head.url)
    with citus_head.connect() as conn:
        prefix, codes = _codes_on_both_workers(conn)
        for line in _lines(prefix, now)[:-1]:
            ingest_batch(conn, line)
        rollups.aggregate_pending(conn)
        conn.execute("INSERT INTO analytics_user_code_owners (role_name, user_code) VALUES (%s, %s), (%s, %s), (%s, %s)",
                     (reader_roles["alice"], codes["user1"], reader_roles["bob"], codes["user2"],
                      reader_roles["team"], codes["user3"]))  # bob reads user3 through the team role
        shards = conn.execute(WORKERS_OF_CODES, (list(codes.values()),)).fetchone()
        expected = {"alice": {codes["user1"]}, "bob": {codes["user2"], codes["user3"]}}
        for who, visible in expected.items():
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(reader_roles[who])))
            for table in RAW_TABLES + ROLLUP_TABLES:
                seen = {r[0] for r in conn.execute(sql.SQL("SELECT DISTINCT user_code FROM {} WHERE user_code LIKE %s").format(
                    sql.Identifier(*table.split("."))), (f"{prefix}-%",)).fetchall()}
                assert seen == visible, (who, table)
                # a filter on another user's code (one shard, routed) finds nothing either
                assert conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE user_code = %s").format(
                    sql.Identifier(*table.split("."))), (codes["user1"] if who == "bob" else codes["user2"],)).fetchone() == (0,)
            assert {r[0] for r in conn.execute("SELECT user_code FROM analytics_user_code_owners").fetchall()} == visible
            days = dashboard.dashboard(conn, codes["user1"], (now - timedelta(days=3)).date(), now.date()).days
            assert bool(days) == (who == "alice")
            for statement in ("UPDATE analytics_sessions SET clicks = 0", "DELETE FROM analytics_daily_user_stats"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
            conn.execute("RESET ROLE")
    assert shards == (2,)  # the three users' rows are on both workers


def test_head_to_0100_and_back_keeps_rows_and_schema_and_a_null_user_code_is_refused(
        trackschema_citus_cluster: CitusCluster) -> None:
    """A private Citus database: analytics rows at 0100 (local tables, statement triggers),
    0101 refused while a raw row has no user_code (one line naming it, nothing changed), then
    0100 -> head -> 0100 -> head: rows kept, 0100's schema back exactly, head's the same."""
    with citus_database(trackschema_citus_cluster, "trackschema_citus_an") as db:
        runner.upgrade(db.settings, "0100_citus_distribution")
        now = _server_now(db.url)
        with db.connect() as conn:
            for line in _lines("cy", now):
                ingest_batch(conn, line)
            rollups.aggregate_pending(conn)
            conn.execute("INSERT INTO analytics_sessions (session_id) VALUES ('no-user')")
            at_0100 = snapshot_on(conn)
            rows = _figures(db.url, "cy")
        with pytest.raises(Exception, match="analytics_sessions has 1 rows without a user_code.*first: no-user.*nothing was changed"):
            runner.upgrade(db.settings, "head")
        assert runner.current_heads(db.settings) == ["0100_citus_distribution"]
        with db.connect() as conn:
            conn.execute("DELETE FROM analytics_sessions WHERE session_id = 'no-user'")
        runner.upgrade(db.settings, "head")
        with db.connect() as conn:
            at_head = snapshot_on(conn)
            assert conn.execute("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'analytics%'").fetchone() == (8,)
        assert _figures(db.url, "cy") == rows
        runner.downgrade(db.settings, "0100_citus_distribution")
        with db.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'analytics%'").fetchone() == (0,)
            conn.execute("INSERT INTO analytics_sessions (session_id) VALUES ('no-user')")  # nullable again
            assert snapshot_on(conn).objects == at_0100.objects
            conn.execute("DELETE FROM analytics_sessions WHERE session_id = 'no-user'")
        assert _figures(db.url, "cy") == rows
        runner.upgrade(db.settings, "head")
        with db.connect() as conn:
            assert snapshot_on(conn).objects == at_head.objects
        assert _figures(db.url, "cy") == rows


def test_on_plain_postgresql_0101_is_a_noop_that_says_so(trackschema_db: Database) -> None:
    noop = "0101_citus_analytics: not a Citus database (extension citus not installed): nothing to distribute"
    notices: list[str] = []
    with trackschema_db.connect() as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        before = snapshot_on(conn)
        rev = runner.script_directory().get_revision("0101_citus_analytics").module  # the revision's own file lists
        conn.execute(analytics.upgrade_sql(rev.revision, policy_functions=rev.POLICY_FUNCTIONS, citus_functions=rev.CITUS_FUNCTIONS))
        conn.execute(analytics.downgrade_sql(rev.revision, policy_functions=rev.POLICY_FUNCTIONS, plain_functions=rev.PLAIN_FUNCTIONS))
        assert snapshot_on(conn).objects == before.objects
    assert notices == [noop, noop]
    runner.downgrade(trackschema_db.settings, "0100_citus_distribution")
    runner.upgrade(trackschema_db.settings, "head")
    offline = runner.upgrade(trackschema_db.settings.__class__(), "0100_citus_distribution:head", sql=True)
    assert offline.sql and noop in offline.sql
    assert "create_distributed_table('public.analytics_sessions', 'user_code'" in offline.sql
