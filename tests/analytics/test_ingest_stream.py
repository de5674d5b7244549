"""The streaming ingest (`trackschema ingest`): bad input loses nothing.

Every bad input is either one recorded reject with its reason, or (a source that is not JSON
lines at all) exit 2 before anything is sent; the valid events of the same source land, and
the report stays small. Each test counts what landed and what was recorded.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.analytics_helpers import click, counter_mismatches, ingest, page_view, session, today, utc
from tests.conftest import admin, run_cli
from trackschema.analytics import ingest_stream
from trackschema.analytics.ingest import IngestOptions, IngestSummary, ingest_handle, ingest_lines, ingest_source
from trackschema.runtime.provision import PostgresServer
from trackschema.runtime.settings import Settings

pytestmark = pytest.mark.clock  # event times relative to the server's clock (docs/time.md)


def landed(conn: psycopg.Connection) -> tuple[int, int, int]:
    """(sessions, page views, clicks) stored."""
    row = conn.execute("SELECT (SELECT count(*) FROM analytics_sessions), (SELECT count(*) FROM analytics_page_views), "
                       "(SELECT count(*) FROM analytics_clicks)").fetchone()
    assert row is not None
    return row


def recorded(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """(event_index, event_type, reason) of every recorded reject, in order."""
    return conn.execute("SELECT event_index, event_type, reason FROM trackschema.analytics_ingest_rejects ORDER BY id").fetchall()


def line(*events: object) -> bytes:
    return (json.dumps({"events": list(events)}) + "\n").encode()


def run(conn: psycopg.Connection, data: bytes, *, batch_events: int = 5000) -> IngestSummary:
    summary = IngestSummary(source="test")
    return ingest_handle(conn, io.BytesIO(data), summary, batch_events=batch_events)


def test_a_file_that_is_not_json_lines_is_exit_2_and_sends_nothing(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_bytes(b"session_id,user_code\ns1,alice\n" * 1000)
    done = run_cli("ingest", str(source), env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert done.returncode == 2
    assert "is not a file of JSON lines: line 1 is not JSON" in done.stderr and "nothing was ingested" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert landed(conn) == (0, 0, 0) and recorded(conn) == []


def test_a_truncated_last_line_is_one_reject_and_the_lines_before_land(conn: psycopg.Connection) -> None:
    at = utc(today(conn), 0, 5)
    whole = line(session("t1", "ann", at), page_view("t1", "ann", at), click("t1", "ann", at))
    cut = line(page_view("t2", "ann", at), page_view("t2", "ann", at + timedelta(seconds=1)))[:-25]  # no newline, cut mid-event
    summary = run(conn, whole + cut)
    assert (summary.lines, summary.batches, summary.events, summary.accepted, summary.rejected) == (2, 2, 3, 3, 1)
    assert landed(conn) == (1, 1, 1)
    (reject,) = summary.rejects
    assert (reject.line, reject.index) == (2, None)
    assert reject.reason.startswith("not valid JSON, and the source ends inside this line (truncated?): Unterminated string")
    rows = conn.execute("SELECT event_index, reason, event FROM trackschema.analytics_ingest_rejects").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(None, reject.reason)]
    assert rows[0][2] == cut.decode()  # the line as received
    assert counter_mismatches(conn) == []


def test_a_10_mb_line_is_one_short_reject_and_the_rest_of_the_file_lands(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        at = utc(today(conn), 0, 5)
    source = tmp_path / "events.jsonl"
    huge_event = page_view("h1", "ann", at, page="p" * (10 * 1024 * 1024))  # valid JSON, one event of 10 MB
    source.write_bytes(line(session("h0", "ann", at)) + b"x" * (10 * 1024 * 1024) + b"\n"
                       + line(huge_event, page_view("h1", "ann", at)) + line(click("h0", "ann", at)))
    done = run_cli("ingest", str(source), "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) < 3_000  # the report stays small
    summary = json.loads(done.stdout)
    assert (summary["lines"], summary["events"], summary["accepted"], summary["rejected"]) == (4, 4, 3, 2)
    reasons = [(r["line"], r["index"], r["reason"]) for r in summary["rejects"]]
    assert reasons[0][:2] == (2, None) and reasons[0][2].startswith("not valid JSON") and len(reasons[0][2]) <= 200
    assert reasons[1][:2] == (3, 0) and reasons[1][2].startswith("the event is ") and "over the limit of 4096" in reasons[1][2]
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert landed(conn) == (2, 1, 1)
        lengths = conn.execute("SELECT length(event), length(reason) FROM trackschema.analytics_ingest_rejects ORDER BY id").fetchall()
        assert [n for n, _ in lengths] == [2048, 2048] and all(r <= 200 for _, r in lengths)


def test_a_line_over_the_limit_is_refused_unread_and_the_reader_never_holds_it(conn: psycopg.Connection) -> None:
    at = utc(today(conn), 0, 5)
    data = line(page_view("l1", "ann", at)) + b'{"events": [' + b"1, " * 4000 + b"1]}\n" + line(click("l1", "ann", at))
    source = ingest_stream.read_source(io.BytesIO(data), max_line_bytes=1000)
    read = list(source)
    assert [r.raw is None for r in read] == [False, True, False]
    assert read[1].nbytes == len(data.splitlines(keepends=True)[1]) and len(read[1].head) <= 8192
    summary = IngestSummary(source="test")
    from trackschema.analytics.ingest import _stream  # the library path ingest_handle takes, with a small limit

    _stream(conn, iter(read), summary, None, 5000)
    assert (summary.accepted, summary.rejected) == (2, 1)
    assert summary.rejects[0].line == 2 and "over the limit of" in summary.rejects[0].reason
    assert landed(conn) == (1, 1, 1)
    assert recorded(conn) == [(None, None, summary.rejects[0].reason)]


def test_bad_timestamps_and_unknown_types_are_rejected_with_their_reason(conn: psycopg.Connection) -> None:
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    at = now - timedelta(minutes=5)
    events = [
        page_view("b1", "ann", at),
        {"type": "page_view", "data": {"session_id": "b1", "user_code": "ann", "page_type": "home", "viewed_at": "yesterday"}},
        {"type": "click", "data": {"session_id": "b1", "user_code": "ann", "click_target": "t", "clicked_at": "2026-02-30T10:00:00Z"}},
        {"type": "session", "data": {"session_id": "b1", "user_code": "ann", "first_seen": True}},
        page_view("b1", "ann", now + timedelta(days=2)),
        page_view("b1", "ann", at.replace(year=1999)),
        {"type": "purchase", "data": {"session_id": "b1", "user_code": "ann"}},
        {"type": 7, "data": {}},
        click("b1", "ann", at),
    ]
    summary = run(conn, line(*events))
    assert (summary.events, summary.accepted, summary.rejected) == (9, 2, 7)
    reasons = [r.reason for r in summary.rejects]
    assert reasons == [
        'unparsable viewed_at "yesterday"',
        'unparsable clicked_at "2026-02-30T10:00:00Z"',
        "unparsable first_seen true",
        reasons[3],
        reasons[4],
        "unknown type 'purchase'",
        "unknown type '7'",
    ]
    assert reasons[3].startswith("viewed_at ") and reasons[3].endswith("is in the future")
    assert reasons[4].startswith("viewed_at 1999-") and "is before 2000-01-01" in reasons[4]
    assert [r.index for r in summary.rejects] == [1, 2, 3, 4, 5, 6, 7]
    assert landed(conn) == (1, 1, 1)
    assert [r[0] for r in recorded(conn)] == [1, 2, 3, 4, 5, 6, 7]
    assert [r[1] for r in recorded(conn)] == ["page_view", "click", "session", "page_view", "page_view", "purchase", "7"]


def test_reasons_are_those_of_analytics_ingest(db_url: str, pg_server: PostgresServer) -> None:
    """The corpus of the analytics_ingest test, through both ways in: the same reasons."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        at = utc(today(conn), 0, 30)
        bad: list[Any] = [
            {"type": "page_view", "data": {"user_code": "alice", "page_type": "home"}},
            {"type": "click", "data": {"session_id": "x", "click_target": "phone"}},
            {"type": "purchase", "data": {"session_id": "x", "user_code": "alice"}},
            [1, 2, 3],
            {"data": {"session_id": "x", "user_code": "alice"}},
            {"type": "click", "data": "phone"},
            {"type": "page_view", "data": {"session_id": "x", "user_code": "alice", "page_type": "home", "viewed_at": "yesterday-ish"}},
            {"type": "click", "data": {"session_id": "x", "user_code": "alice", "click_target": "t", "clicked_at": "2026-02-30T10:00:00Z"}},
            page_view("x", "alice", utc(at.date().replace(year=1999), 1)),
            click("x", "alice", at + timedelta(days=3)),
            page_view("x", "alice", at, page="p" * 5000),
            {"type": "session", "data": {"session_id": "x", "user_code": "alice", "contact_id": "42"}},
            {"type": "session", "data": {"session_id": "x", "user_code": "alice", "first_seen": at.isoformat(),
                                         "last_seen": (at - timedelta(minutes=1)).isoformat()}},
            {"type": "session", "data": {"session_id": "x", "user_code": "alice", "last_seen": "soon"}},
            {"type": "page_view", "data": {"session_id": "x", "user_code": "alice"}},
            {"type": "click", "data": {"session_id": "x", "user_code": "alice", "click_target": ""}},
            page_view("x", "u" * 65, at),
            {"type": "click", "data": {"session_id": {"id": 1}, "user_code": "alice", "click_target": "t"}},
            {"type": "click", "data": {"session_id": 12, "user_code": True, "click_target": "t"}},
            {"type": "page_view", "data": {"session_id": "x", "user_code": "alice", "page_type": "home", "viewed_at": 10**25}},
            {"type": "click", "data": {"session_id": "x", "user_code": "alice", "click_target": "t", "clicked_at": [1]}},
        ]
        api = ingest(conn, bad)
        conn.execute("TRUNCATE trackschema.analytics_ingest_rejects")
        summary = run(conn, line(*bad))
    assert api["accepted"] == summary.accepted == 0
    assert [(r.index, r.reason) for r in summary.rejects] == [(r["index"], r["reason"]) for r in api["rejected"]]
    assert len(summary.rejects) == len(bad)


def test_duplicate_events_land_once_and_each_repeat_is_recorded(conn: psycopg.Connection) -> None:
    at = utc(today(conn), 0, 10)
    first = line(session("d1", "ann", at), page_view("d1", "ann", at), click("d1", "ann", at),
                 page_view("d1", "ann", at))  # the same page view twice in one line
    second = line(page_view("d1", "ann", at), page_view("d1", "ann", at + timedelta(seconds=1)))  # again, and a new one
    summary = run(conn, first + second)
    assert (summary.events, summary.accepted, summary.rejected, summary.duplicates) == (6, 4, 2, 2)
    assert [(r.line, r.index, r.reason) for r in summary.rejects] == [
        (1, 3, "duplicate event: the same as event 1 of line 1"),
        (2, 0, "duplicate event: the same as event 1 of line 1"),
    ]
    assert landed(conn) == (1, 2, 1)
    # across transactions and runs: the whole source once more
    again = run(conn, first + second, batch_events=1)
    assert (again.transactions, again.accepted, again.duplicates, again.rejected) == (2, 1, 5, 5)
    assert {r.reason for r in again.rejects} == {"duplicate event: this page_view was ingested before",
                                                  "duplicate event: this click was ingested before",
                                                  "duplicate event: the same as event 1 of line 1"}
    assert landed(conn) == (1, 2, 1)
    assert conn.execute("SELECT page_views, clicks FROM analytics_sessions").fetchone() == (2, 1)
    assert counter_mismatches(conn) == []
    assert len(recorded(conn)) == 7 and all(r[2].startswith("duplicate event") for r in recorded(conn))


def test_many_batches_on_two_connections_land_in_order_with_exact_counters(conn: psycopg.Connection) -> None:
    at = utc(today(conn), 0, 20)
    lines = []
    for n in range(60):  # sessions spread over lines, so batches share sessions
        sid = f"m{n % 7}"
        lines.append(line(session(sid, "ann", at), page_view(sid, "ann", at + timedelta(seconds=n)),
                          click(sid, "ann", at + timedelta(seconds=n)), {"type": "nope", "data": {}}))
    calls: list[tuple[int, int]] = []
    summary = ingest_lines(conn, enumerate(lines, start=1), IngestSummary(source="test"),
                           lambda nbytes, s: calls.append((nbytes, s.transactions)), batch_events=20)
    assert summary.transactions == len(calls) > 10 and [c[1] for c in calls] == list(range(1, len(calls) + 1))
    assert sum(c[0] for c in calls) == sum(len(x) for x in lines)
    assert (summary.events, summary.accepted, summary.rejected, summary.page_views, summary.clicks) == (240, 180, 60, 60, 60)
    assert [r.line for r in summary.rejects] == list(range(1, 61))
    assert landed(conn) == (7, 60, 60)
    assert counter_mismatches(conn) == []


def test_a_line_the_server_fails_on_is_isolated_and_recorded(conn: psycopg.Connection) -> None:
    """A case the checks do not know (here a CHECK constraint a DBA added): the batch is sent
    again line by line, the failing line is recorded with the server's message, the others land."""
    at = utc(today(conn), 0, 30)
    conn.execute("ALTER TABLE analytics_clicks ADD CONSTRAINT no_evil CHECK (click_target <> 'evil')")
    data = line(page_view("i1", "ann", at)) + line(click("i1", "ann", at, target="evil")) + line(click("i1", "ann", at))
    summary = run(conn, data)
    assert (summary.accepted, summary.rejected) == (2, 1)
    (reject,) = summary.rejects
    assert reject.line == 2 and reject.index is None and reject.reason.startswith("the server refused this line: ")
    assert "no_evil" in reject.reason
    assert landed(conn) == (1, 1, 1)
    assert counter_mismatches(conn) == []
    assert conn.execute("SELECT event FROM trackschema.analytics_ingest_rejects").fetchone()[0] == data.splitlines()[1].decode()  # type: ignore[index]


def test_the_insert_only_ingest_role_can_stream_and_cannot_touch_staging(db_url: str, pg_server: PostgresServer,
                                                                        tmp_path: Path) -> None:
    loader = f"ts_stream_loader_{abs(hash(db_url)) % 10**8}"
    with admin(pg_server) as server:
        server.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(loader)))
        server.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE trackschema_ingest").format(sql.Identifier(loader)))
    try:
        assert db_url.startswith("postgresql://postgres@")
        url = db_url.replace("postgres@", f"{loader}@", 1)
        with psycopg.connect(url, autocommit=True) as conn:
            at = utc(today(conn), 0, 40)
            source = tmp_path / "events.jsonl"
            source.write_bytes(line(session("r1", "ann", at), page_view("r1", "ann", at), {"type": "bad"}))
            summary = ingest_source(Settings(database_url=url), str(source), options=IngestOptions(batch_events=100))
            assert (summary.accepted, summary.rejected) == (2, 1)
            ingest_stream.prepare(conn)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO pg_temp.analytics_ingest_staging (line, idx, type, session_id, user_code, ts) "
                             "VALUES (1, 0, 'session', 'forged', 'x', now())")
        with psycopg.connect(url, autocommit=True) as conn:  # a table of that name made by the caller is refused
            conn.execute("CREATE TEMPORARY TABLE analytics_ingest_staging (line integer)")
            with pytest.raises(psycopg.errors.RaiseException, match="was not made by analytics_ingest_prepare"):
                ingest_stream.prepare(conn)
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert landed(conn) == (1, 1, 0)
            assert counter_mismatches(conn) == []
    finally:
        with admin(pg_server) as server:
            server.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(loader)))
