"""Dashboards: closed days from the roll-ups, today (and unaggregated days) from the raw rows."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import psycopg
import pytest

from tests.analytics_helpers import click, ingest, page_view, session, today, utc
from tests.conftest import run_cli
from trackschema.analytics import rollups
from trackschema.analytics.dashboard import dashboard

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)


def _traffic(conn: psycopg.Connection) -> None:
    t = today(conn)
    events = []
    for back in range(4):
        day = t - timedelta(days=back)
        for n in range(3 + back):
            sid = f"h-{back}-{n}"
            share = ("card", "qr", None)[n % 3]
            events += [session(sid, "hana", utc(day, 0, n), share=share), page_view(sid, "hana", utc(day, 0, n), "home", share=share),
                       page_view(sid, "hana", utc(day, 0, n), "profile" if n % 2 else "home", share=share),
                       click(sid, "hana", utc(day, 0, n), "phone" if n % 2 else "email", share=share)]
        events += [page_view(f"o-{back}", "omar", utc(day, 0, 1))]
    assert ingest(conn, events)["rejected"] == []


def test_closed_days_come_from_rollups_and_today_from_raw(conn: psycopg.Connection) -> None:
    _traffic(conn)
    t = today(conn)
    first = t - timedelta(days=3)
    raw_only = conn.execute("SELECT * FROM analytics_daily_stats_raw('hana', %s, %s)", (first, t)).fetchall()
    # nothing aggregated yet: every day is served from the raw rows
    before = dashboard(conn, "hana", first, t)
    assert [d.source for d in before.days] == ["raw"] * 4
    rollups.aggregate_range(conn, first, t - timedelta(days=2))  # leave yesterday unaggregated
    board = dashboard(conn, "hana", first, t)
    assert [(d.day, d.source) for d in board.days] == [
        (first, "rollup"), (first + timedelta(days=1), "rollup"), (t - timedelta(days=1), "raw"), (t, "raw")]
    assert [(d.day, d.total_sessions, d.total_page_views, d.total_clicks, d.unique_share_codes) for d in board.days] == raw_only
    assert [d.unique_share_codes for d in board.days] == [["card", "qr"]] * 4
    # after the roll-up of yesterday only today is raw, with the same numbers
    rollups.aggregate_pending(conn)
    board = dashboard(conn, "hana", first, t)
    assert [d.source for d in board.days] == ["rollup", "rollup", "rollup", "raw"]
    assert [(d.day, d.total_sessions, d.total_page_views, d.total_clicks, d.unique_share_codes) for d in board.days] == raw_only
    # today's new traffic shows up at once; a roll-up of today (still open) is not used
    rollups.aggregate_day(conn, t)
    ingest(conn, [page_view("h-new", "hana", utc(t, 0, 2))])
    assert dashboard(conn, "hana", t, t).days[0].total_page_views == raw_only[-1][2] + 1
    # pages, click targets and share codes add roll-ups and raw rows up correctly
    views = conn.execute("SELECT page_type, count(*) FROM analytics_page_views WHERE user_code = 'hana' GROUP BY 1").fetchall()
    assert Counter({p.page_type: p.view_count for p in board.pages}) + Counter({"home": 1}) == Counter(dict(views))
    assert {(c.click_target, c.click_category, c.click_count) for c in board.clicks} == set(conn.execute(
        "SELECT click_target, click_category, count(*) FROM analytics_clicks WHERE user_code = 'hana' GROUP BY 1, 2").fetchall())
    shares = {s.share_code: (s.total_sessions, s.total_page_views, s.total_clicks) for s in board.shares}
    assert shares == {share: (n, 2 * n, n) for share, n in conn.execute(
        "SELECT share_code, count(*) FROM analytics_sessions WHERE user_code = 'hana' AND session_id <> 'h-new' GROUP BY 1").fetchall()}
    assert dashboard(conn, "nobody", first, t).days == []


def test_cli_dashboard_json(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _traffic(conn)
        rollups.aggregate_pending(conn)
    done = run_cli("analytics", "dashboard", "hana", "--days", "4", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert done.returncode == 0, done.stderr
    board = json.loads(done.stdout)
    assert board["totals"] == {"sessions": 18, "page_views": 36, "clicks": 18, "days_from_rollups": 3, "days_from_raw": 1}
    assert [p["page_type"] for p in board["pages"]] == ["home", "profile"]
