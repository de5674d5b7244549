"""Small builders and checks shared by the analytics tests."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import psycopg
from psycopg import sql


def utc(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


from tests.observe import DEADLINE, POLL, wait_until  # noqa: E402,F401 - shared by the analytics tests


def today(conn: psycopg.Connection) -> date:
    return conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]  # type: ignore[index]


def session(sid: str, user: str, at: datetime, share: str | None = None, **extra: Any) -> dict[str, Any]:
    data = {"session_id": sid, "user_code": user, "first_seen": at.isoformat(), **extra}
    if share:
        data["share_code"] = share
    return {"type": "session", "data": data}


def page_view(sid: str, user: str, at: datetime, page: str = "home", share: str | None = None) -> dict[str, Any]:
    data = {"session_id": sid, "user_code": user, "page_type": page, "viewed_at": at.isoformat()}
    if share:
        data["share_code"] = share
    return {"type": "page_view", "data": data}


def click(sid: str, user: str, at: datetime, target: str = "phone", category: str | None = "contact",
          share: str | None = None) -> dict[str, Any]:
    data = {"session_id": sid, "user_code": user, "click_target": target, "clicked_at": at.isoformat()}
    if category:
        data["click_category"] = category
    if share:
        data["share_code"] = share
    return {"type": "click", "data": data}


def ingest(conn: psycopg.Connection, events: list[Any]) -> dict[str, Any]:
    row = conn.execute("SELECT analytics_ingest(%s::jsonb)", (json.dumps({"events": events}),)).fetchone()
    assert row is not None
    return row[0]


def counter_mismatches(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """Sessions whose page_views/clicks counters differ from their raw rows."""
    return conn.execute(
        """SELECT s.session_id, s.page_views, s.clicks,
                  (SELECT count(*) FROM analytics_page_views p WHERE p.session_id = s.session_id),
                  (SELECT count(*) FROM analytics_clicks c WHERE c.session_id = s.session_id)
             FROM analytics_sessions s
            WHERE s.page_views <> (SELECT count(*) FROM analytics_page_views p WHERE p.session_id = s.session_id)
               OR s.clicks <> (SELECT count(*) FROM analytics_clicks c WHERE c.session_id = s.session_id)"""
    ).fetchall()


ROLLUP_TABLES = ("analytics_daily_user_stats", "analytics_daily_group_stats", "analytics_daily_click_targets", "analytics_daily_page_stats")


def rollup_snapshot(conn: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the four roll-up tables, ids and aggregated_at included, in a stable order."""
    return {t: conn.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(*t.split(".")))).fetchall() for t in ROLLUP_TABLES}


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
