"""Revision 0103: analytics_ingest_check() v2 and analytics_ingest_prepare() v2 cost less and
change nothing the ingest accepts, refuses, records or stages.

The time strings are built from the server's now() (read once per test), so the tests never
depend on the date.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from tests.conftest import make_settings
from trackschema.analytics import ingest_stream
from trackschema.migration_ops import read_sql
from trackschema.migrations import runner as migrate

pytestmark = pytest.mark.clock  # instants relative to the server's clock (docs/time.md)

CHECK_V1 = "functions/analytics_ingest_check.v1.sql"
CHECK_V2 = "functions/analytics_ingest_check.v2.sql"
PREVIOUS = "0102_analytics_session_check"


def shapes() -> list[str]:
    """The shapes v2 looks up, as its file declares them."""
    text = read_sql(CHECK_V2)
    declared = re.search(r"c_iso_shapes\s+constant text\[\] := ARRAY\[(.*?)\];", text, re.S)
    assert declared, "analytics_ingest_check.v2.sql declares c_iso_shapes"
    return re.findall(r"'([^']*)'", declared.group(1))


def iso_expression() -> str:
    text = read_sql(CHECK_V2)
    declared = re.search(r"c_iso_time\s+constant text :=\s*'([^']*)';", text)
    assert declared
    return declared.group(1)


def test_every_listed_shape_is_one_the_iso_expression_accepts(conn: psycopg.Connection) -> None:
    listed = shapes()
    assert len(listed) == len(set(listed)) == 24
    # a shape's 9s stand for any digit: try each digit in every place at once, and mixed ones
    samples = [shape.replace("9", d) for shape in listed for d in "0123456789"]
    samples += [re.sub("9", lambda m, i=iter("31415926535897932384626"): next(i, "7"), shape) for shape in listed]
    matched = conn.execute("SELECT bool_and(s ~ %s), count(*) FROM unnest(%s::text[]) AS s",
                           (iso_expression(), samples)).fetchone()
    assert matched == (True, len(samples))


def time_forms(now: datetime) -> list[object]:
    """Event times of every kind the check meets: listed shapes, ISO forms v2 leaves to the
    expression, strings PostgreSQL would read but the API refuses, broken ones, numbers."""
    t = now - timedelta(minutes=30, microseconds=-123456)
    plus = timezone(timedelta(hours=5, minutes=30))
    minus = timezone(timedelta(hours=-3))
    return [
        t.isoformat(),                                      # listed: Python, microseconds, +00:00
        t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",  # listed: JavaScript
        t.strftime("%Y-%m-%d %H:%M:%S"),                    # listed: space, no offset
        t.astimezone(plus).isoformat(),                     # listed: +05:30
        t.astimezone(minus).strftime("%Y-%m-%dT%H:%M:%S-03:00"),  # listed: a negative offset
        t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-1] + "Z",      # 5 digits of fraction: the expression
        t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z",        # 9 digits: the expression, rounded by the cast
        t.strftime("%Y-%m-%dT%H:%M") + "Z",                 # hh:mm only
        t.astimezone(plus).strftime("%Y-%m-%dT%H:%M:%S+0530"),
        t.astimezone(plus).strftime("%Y-%m-%dT%H:%M:%S+05"),
        t.strftime("%Y-13-%dT%H:%M:%SZ"),                   # a listed shape that is no date: the cast fails
        t.strftime("%Y-%m-%dT25:%M:%SZ"),
        t.strftime("%Y-%m-%dT%H:%M:%SZ\n"),                 # a newline after it
        t.strftime("%Y-%m-%dT%H:%M:%SZ").replace("0", "\uff10"),  # full-width digits
        t.strftime("%Y-%m-%d"),                             # a date alone
        "now", "yesterday", "epoch", "J2461379", "",        # read by PostgreSQL, refused by the API
        t.strftime("%Y-%m-%d %H:%M:%S PST"),
        (now - timedelta(days=20000)).isoformat(),          # before the floor (2000 at the latest)
        (now + timedelta(hours=3)).isoformat(),             # in the future
        int(t.timestamp() * 1000),                          # epoch milliseconds
    ]  # (no time at all is the check's own now(): the same code in both, and two runs differ)


def check_once(conn: psycopg.Connection, lines: list[bytes]) -> tuple[dict[str, Any], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """COPY `lines`, check them, read what was staged and recorded, roll everything back."""
    batch = ingest_stream.Batch()
    for number, raw in enumerate(lines, start=1):
        batch.add(ingest_stream.SourceLine(number, raw, len(raw), False))
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        with cur.copy(ingest_stream.COPY_LINES) as copy:
            copy.write(batch.payload())
        checked = cur.execute("SELECT analytics_ingest_check()").fetchone()[0]  # type: ignore[index]
        staged = cur.execute("SELECT line, idx, type, id, session_id, user_code, share_code, contact_id, target, category, "
                             "ip_address, user_agent, referrer, ts, ts2 FROM pg_temp.analytics_ingest_staging "
                             "ORDER BY line, idx").fetchall()
        rejects = cur.execute("SELECT event_index, event_type, reason, event FROM trackschema.analytics_ingest_rejects "
                              "ORDER BY batch_id, event_index").fetchall()
    checked.pop("batch_id")
    return checked, staged, rejects


def test_v2_accepts_refuses_and_stages_exactly_what_v1_did(conn: psycopg.Connection) -> None:
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    forms = time_forms(now)
    first_seen = (now - timedelta(hours=2)).isoformat()
    lines = []
    for n, form in enumerate(forms):
        data = {"session_id": f"s{n}", "user_code": "u1"}
        lines.append(json.dumps({"events": [
            {"type": "session", "data": {**data, "first_seen": first_seen, "last_seen": form}},
            {"type": "session", "data": {**data, "session_id": f"t{n}", "first_seen": form}},
            {"type": "page_view", "data": {**data, "page_type": "home", "viewed_at": form}},
            {"type": "click", "data": {**data, "click_target": "phone", "clicked_at": form}},
        ]}).encode() + b"\n")
    ingest_stream.prepare(conn)
    results = {}
    try:
        for version in (CHECK_V1, CHECK_V2):
            conn.execute(read_sql(version))
            results[version] = check_once(conn, lines)
    finally:
        conn.execute(read_sql(CHECK_V2))
    checked, staged, rejects = results[CHECK_V2]
    assert results[CHECK_V1] == results[CHECK_V2]
    # the forms reached every branch: listed shapes staged, others staged by the expression,
    # refusals recorded with v1's reasons
    assert checked["events"] == 4 * len(forms) and checked["staged"] == len(staged) and checked["recorded"] == len(rejects)
    assert 4 * 8 <= len(staged) < 4 * len(forms)
    reasons = {reason.split(" ")[0] for _, _, reason, _ in rejects}
    assert {"unparsable", "viewed_at", "clicked_at", "first_seen", "last_seen"} >= reasons >= {"unparsable"}
    assert any("is in the future" in reason for _, _, reason, _ in rejects)
    assert any(re.match(r"(viewed_at|clicked_at|first_seen) \S+ \S+ is before ", reason) for _, _, reason, _ in rejects)


def test_prepare_v2_keeps_line_bodies_uncompressed(conn: psycopg.Connection) -> None:
    ingest_stream.prepare(conn)
    storage = conn.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = 'pg_temp.analytics_ingest_lines'::regclass "
                           "AND attname = 'body'").fetchone()
    assert storage == ("e",)
    big = json.dumps({"events": [{"type": "page_view", "data": {"n": i}} for i in range(2000)]}).encode()
    batch = ingest_stream.Batch()
    batch.add(ingest_stream.SourceLine(1, big, len(big), False))
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        with cur.copy(ingest_stream.COPY_LINES) as copy:
            copy.write(batch.payload())
        row = cur.execute("SELECT pg_column_compression(body), octet_length(body), pg_column_size(body) "
                          "FROM pg_temp.analytics_ingest_lines").fetchone()
    assert row is not None
    compression, length, stored = row
    assert compression is None and length == len(big) and stored >= length  # stored as sent, out of line


def test_downgrade_puts_v1_back_and_upgrade_v2_with_the_ingest_roles_grant(db_url: str) -> None:
    settings = make_settings(db_url)

    def state() -> tuple[Any, ...]:
        with psycopg.connect(db_url, autocommit=True) as c:
            row = c.execute(
                "SELECT (SELECT prosrc FROM pg_proc WHERE oid = 'analytics_ingest_check()'::regprocedure) LIKE '%c_iso_shapes%', "
                "       (SELECT prosrc FROM pg_proc WHERE oid = 'analytics_ingest_prepare()'::regprocedure) LIKE '%STORAGE EXTERNAL%', "
                "       (SELECT array_agg(DISTINCT p.proacl::text) FROM pg_proc p WHERE p.oid IN "
                "            ('analytics_ingest_check()'::regprocedure, 'analytics_ingest_prepare()'::regprocedure))").fetchone()
        assert row is not None
        return tuple(row)

    at_head = state()
    assert at_head[:2] == (True, True)
    migrate.downgrade(settings, PREVIOUS)
    at_previous = state()
    assert at_previous[:2] == (False, False) and at_previous[2] == at_head[2]
    migrate.upgrade(settings, "head")
    assert state() == at_head
