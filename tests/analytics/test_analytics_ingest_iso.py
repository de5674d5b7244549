"""analytics_ingest v2 (revision 0070): event times are ISO 8601 strings or epoch milliseconds.

Every instant is taken relative to the server's now() (read once per test), so the tests
never depend on the date: the function rejects times more than an hour ahead and before
the floor (2000, the retention horizon).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from tests.analytics_helpers import ingest
from tests.conftest import make_settings
from trackschema.migrations import runner as migrate

pytestmark = pytest.mark.clock  # instants relative to the server's clock (docs/time.md)

PREVIOUS = "0060_analytics_job_procedures"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def server_now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0].astimezone(timezone.utc)


def offset(hours: int, minutes: int = 0) -> timezone:
    return timezone(timedelta(hours=hours, minutes=minutes))


def _epoch_ms(t: datetime) -> tuple[int, datetime]:
    ms = (t - EPOCH) // timedelta(milliseconds=1)
    return ms, EPOCH + timedelta(milliseconds=ms)


# name -> (instant -> (JSON value sent, the instant the server must store))
ACCEPTED: dict[str, Callable[[datetime], tuple[Any, datetime]]] = {
    "T, Z": lambda t: (f"{t:%Y-%m-%dT%H:%M:%S}Z", t.replace(microsecond=0)),
    "space, fraction, +05:30": lambda t: (f"{t.astimezone(offset(5, 30)):%Y-%m-%d %H:%M:%S.%f}+05:30", t),
    "T, -0500": lambda t: (f"{t.astimezone(offset(-5)):%Y-%m-%dT%H:%M:%S}-0500", t.replace(microsecond=0)),
    "T, +02": lambda t: (f"{t.astimezone(offset(2)):%Y-%m-%dT%H:%M:%S}+02", t.replace(microsecond=0)),
    "no offset is UTC": lambda t: (f"{t:%Y-%m-%dT%H:%M:%S}", t.replace(microsecond=0)),
    "no offset, fraction": lambda t: (f"{t:%Y-%m-%dT%H:%M:%S.%f}", t),
    "hh:mm, Z": lambda t: (f"{t:%Y-%m-%dT%H:%M}Z", t.replace(second=0, microsecond=0)),
    "Python isoformat": lambda t: (t.isoformat(), t),
    "epoch ms number": _epoch_ms,
}


@pytest.mark.parametrize("form", list(ACCEPTED))
def test_iso_8601_and_epoch_ms_times_are_accepted_in_every_field(conn: psycopg.Connection, form: str) -> None:
    now = server_now(conn)
    first, first_at = ACCEPTED[form](now - timedelta(hours=1, seconds=7, microseconds=123456))
    last, last_at = ACCEPTED[form](now - timedelta(minutes=30, seconds=11, microseconds=654321))
    viewed, viewed_at = ACCEPTED[form](now - timedelta(minutes=50, seconds=3, microseconds=500001))
    clicked, clicked_at = ACCEPTED[form](now - timedelta(minutes=40, seconds=59, microseconds=999))
    result = ingest(conn, [
        {"type": "session", "data": {"session_id": "s", "user_code": "u", "first_seen": first, "last_seen": last}},
        {"type": "page_view", "data": {"session_id": "pv", "user_code": "u", "page_type": "home", "viewed_at": viewed}},
        {"type": "click", "data": {"session_id": "ck", "user_code": "u", "click_target": "phone", "clicked_at": clicked}},
    ])
    assert (result["accepted"], result["rejected"]) == (3, [])
    assert conn.execute("SELECT first_seen, last_seen FROM analytics_sessions WHERE session_id = 's'").fetchone() == (first_at, last_at)
    assert conn.execute("SELECT viewed_at FROM analytics_page_views WHERE session_id = 'pv'").fetchone() == (viewed_at,)
    assert conn.execute("SELECT clicked_at FROM analytics_clicks WHERE session_id = 'ck'").fetchone() == (clicked_at,)


def julian_day(day: date) -> int:
    return day.toordinal() + 1721425  # 0001-01-01 is Julian day 1721426


# name -> (server now -> a string v1 read as a time; most of them recent, so v1 accepted them)
REJECTED: dict[str, Callable[[datetime], str]] = {
    "now": lambda now: "now",
    "today": lambda now: "today",
    "yesterday": lambda now: "yesterday",
    "tomorrow": lambda now: "tomorrow",
    "Julian date J2461379": lambda now: "J2461379",
    "Julian date of today": lambda now: f"J{julian_day(now.date())}",
    "zone name": lambda now: f"{now - timedelta(hours=12):%Y-%m-%d %H:%M} PST8PDT",
    "date only": lambda now: f"{now:%Y-%m-%d}",
    "empty": lambda now: "",
    "time only": lambda now: "12:00",
    "zone abbreviation": lambda now: f"{now - timedelta(hours=12):%Y-%m-%d %H:%M:%S} EST",
    "surrounding space": lambda now: f" {now - timedelta(hours=1):%Y-%m-%dT%H:%M:%S}Z ",
    "epoch": lambda now: "epoch",
}


def unparsable(field: str, value: str) -> str:
    return f"unparsable {field} {json.dumps(value)}"


@pytest.mark.parametrize("careful", [False, True], ids=["fast path", "careful path"])
@pytest.mark.parametrize("name", list(REJECTED))
def test_other_time_strings_are_recorded_rejects_and_the_good_events_land(conn: psycopg.Connection, name: str, careful: bool) -> None:
    now = server_now(conn)
    bad = REJECTED[name](now)
    good = (now - timedelta(hours=1)).isoformat()
    events: list[dict[str, Any]] = [
        {"type": "session", "data": {"session_id": "g", "user_code": "u", "first_seen": good}},
        {"type": "session", "data": {"session_id": "b1", "user_code": "u", "first_seen": bad}},
        {"type": "page_view", "data": {"session_id": "g", "user_code": "u", "page_type": "home", "viewed_at": good}},
        {"type": "page_view", "data": {"session_id": "b2", "user_code": "u", "page_type": "home", "viewed_at": bad}},
        {"type": "click", "data": {"session_id": "b3", "user_code": "u", "click_target": "phone", "clicked_at": bad}},
        {"type": "session", "data": {"session_id": "b4", "user_code": "u", "first_seen": good, "last_seen": bad}},
        {"type": "click", "data": {"session_id": "g", "user_code": "u", "click_target": "phone", "clicked_at": good}},
    ]
    expected = [
        {"index": 1, "reason": unparsable("first_seen", bad)},
        {"index": 3, "reason": unparsable("viewed_at", bad)},
        {"index": 4, "reason": unparsable("clicked_at", bad)},
        {"index": 5, "reason": unparsable("last_seen", bad)},
    ]
    if careful:
        # passes the pattern but fails the cast: the batch is redone on the careful path
        # (trackschema.analytics_try_timestamptz), where the pattern must hold just the same
        impossible = "2026-02-30T10:00:00Z"
        events.append({"type": "click", "data": {"session_id": "b5", "user_code": "u", "click_target": "x", "clicked_at": impossible}})
        expected.append({"index": 7, "reason": unparsable("clicked_at", impossible)})
    result = ingest(conn, events)
    assert result["events"] == len(events)
    assert result["accepted"] == 3
    assert result["rejected"] == expected
    assert (result["sessions_new"], result["page_views"], result["clicks"]) == (1, 1, 1)
    # the good events landed, nothing of the bad ones did
    assert conn.execute("SELECT session_id, page_views, clicks FROM analytics_sessions").fetchall() == [("g", 1, 1)]
    assert conn.execute("SELECT count(*) FROM analytics_page_views").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM analytics_clicks").fetchone() == (1,)
    recorded = conn.execute(
        "SELECT event_index, reason, event FROM trackschema.analytics_ingest_rejects WHERE batch_id = %s ORDER BY event_index",
        (result["batch_id"],),
    ).fetchall()
    assert [{"index": r[0], "reason": r[1]} for r in recorded] == expected
    assert [json.loads(r[2]) for r in recorded] == [events[r["index"]] for r in expected]


def _function_state(conn: psycopg.Connection) -> tuple[Any, ...]:
    row = conn.execute(
        """SELECT p.proacl::text, p.proowner::regrole::text, p.prosecdef, p.proconfig,
                  has_function_privilege(r.role_name, p.oid, 'EXECUTE'), position('c_iso_time' in p.prosrc) > 0
             FROM pg_proc p, trackschema.analytics_roles r
            WHERE p.oid = 'analytics_ingest(jsonb)'::regprocedure AND r.purpose = 'ingest'"""
    ).fetchone()
    assert row is not None
    return row


def _reasons_for(conn: psycopg.Connection, value: str) -> list[str]:
    result = ingest(conn, [{"type": "session", "data": {"session_id": f"d-{value}", "user_code": "u", "first_seen": value}}])
    return [r["reason"] for r in result["rejected"]]


def test_downgrade_puts_v1_back_and_upgrade_v2_keeping_owner_and_grants(db_url: str) -> None:
    settings = make_settings(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        at_head = _function_state(conn)
        assert at_head[4] is True and at_head[5] is True  # the ingest role may EXECUTE; v2 is installed
        assert not any(entry.startswith("=") for entry in at_head[0].strip("{}").split(","))  # not PUBLIC
        assert _reasons_for(conn, "now") == [unparsable("first_seen", "now")]
    migrate.downgrade(settings, PREVIOUS)
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert migrate.current_heads(settings) == [PREVIOUS]
        assert _function_state(conn) == at_head[:5] + (False,)  # v1 again, same ACL, owner, settings
        assert _reasons_for(conn, "now") == []  # what v1 did: 'now' taken as an event time
    migrate.upgrade(settings, "head")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert _function_state(conn) == at_head
        assert _reasons_for(conn, "today") == [unparsable("first_seen", "today")]
