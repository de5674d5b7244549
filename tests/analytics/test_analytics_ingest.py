"""analytics_ingest(batch): set-based loading, per-batch counters, validation, concurrency, CLI."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import psycopg
import pytest

from tests.analytics_helpers import click, counter_mismatches, ingest, page_view, session, today, utc
from tests.conftest import run_cli
from trackschema.analytics.ingest import IngestSummary, ingest_batch, ingest_lines, ingest_source
from trackschema.errors import TrackschemaError
from trackschema.runtime.settings import Settings

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)


def test_batch_lands_set_based_with_counters_once_per_session(conn: psycopg.Connection) -> None:
    day = today(conn) - timedelta(days=1)
    events = [
        session("s1", "alice", utc(day, 10), share="card", user_agent="UA", referrer="https://r.example", ip_address="10.0.0.1"),
        page_view("s1", "alice", utc(day, 10, 1), "home", share="card"),
        page_view("s1", "alice", utc(day, 10, 2), "contact", share="card"),
        click("s1", "alice", utc(day, 10, 3), "phone", share="card"),
        page_view("s2", "alice", utc(day, 11)),  # no session event: the session is created
        click("s2", "alice", utc(day, 11, 5), "email"),
        click("s2", "alice", utc(day, 11, 6), "email"),
    ]
    result = ingest(conn, events)
    assert result["accepted"] == 7 and result["rejected"] == []
    assert (result["sessions_new"], result["sessions_updated"], result["page_views"], result["clicks"]) == (2, 0, 3, 3)
    rows = conn.execute(
        "SELECT session_id, user_code, share_code, page_views, clicks, first_seen, last_seen, user_agent, ip_address "
        "FROM analytics_sessions ORDER BY session_id"
    ).fetchall()
    assert rows == [
        ("s1", "alice", "card", 2, 1, utc(day, 10), utc(day, 10, 3), "UA", "10.0.0.1"),
        ("s2", "alice", None, 1, 2, utc(day, 11), utc(day, 11, 6), None, None),
    ]
    # a second batch widens first_seen/last_seen and adds to the counters once per session
    events = [page_view("s1", "alice", utc(day, 9)), click("s1", "alice", utc(day, 12)), page_view("s1", "alice", utc(day, 12, 1))]
    updates = "SELECT n_tup_upd, n_tup_ins FROM pg_stat_xact_user_tables WHERE relname = 'analytics_sessions'"
    with conn.transaction():  # backend-local counters: not flushed inside a transaction
        before = conn.execute(updates).fetchone()
        result = ingest(conn, events)
        after = conn.execute(updates).fetchone()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)  # type: ignore[index]  # 3 events, 1 row update
    assert (result["sessions_new"], result["sessions_updated"]) == (0, 1)
    assert conn.execute("SELECT page_views, clicks, first_seen, last_seen FROM analytics_sessions WHERE session_id = 's1'").fetchone() == (
        4, 2, utc(day, 9), utc(day, 12, 1))
    assert counter_mismatches(conn) == []
    # the touched UTC day is marked for re-aggregation
    assert conn.execute("SELECT DISTINCT day FROM trackschema.analytics_dirty_days").fetchall() == [(day,)]


def test_invalid_events_are_rejected_with_position_and_reason_while_the_rest_lands(conn: psycopg.Connection) -> None:
    day = today(conn)
    at = utc(day, 0, 30)
    ok_view = page_view("ok", "alice", at)
    bad = [
        ("missing session_id", {"type": "page_view", "data": {"user_code": "alice", "page_type": "home"}}),
        ("missing user_code", {"type": "click", "data": {"session_id": "x", "click_target": "phone"}}),
        ("unknown type 'purchase'", {"type": "purchase", "data": {"session_id": "x", "user_code": "alice"}}),
        ("the event is not a JSON object", [1, 2, 3]),
        ("missing type", {"data": {"session_id": "x", "user_code": "alice"}}),
        ("missing data object", {"type": "click", "data": "phone"}),
        ("unparsable viewed_at", {"type": "page_view", "data": {"session_id": "x", "user_code": "alice", "page_type": "home", "viewed_at": "yesterday-ish"}}),
        ("unparsable clicked_at", {"type": "click", "data": {"session_id": "x", "user_code": "alice", "click_target": "t", "clicked_at": "2026-02-30T10:00:00Z"}}),
        ("is before 2000-01-01", page_view("x", "alice", utc(day.replace(year=1999), 1))),
        ("is in the future", click("x", "alice", at + timedelta(days=3))),
        ("over the limit of 4096", page_view("x", "alice", at, page="p" * 5000)),
        ("contact_id is not a UUID", {"type": "session", "data": {"session_id": "x", "user_code": "alice", "contact_id": "42"}}),
        ("last_seen is before first_seen", {"type": "session", "data": {"session_id": "x", "user_code": "alice",
                                                                        "first_seen": at.isoformat(), "last_seen": (at - timedelta(minutes=1)).isoformat()}}),
        ("missing page_type", {"type": "page_view", "data": {"session_id": "x", "user_code": "alice"}}),
        ("missing click_target", {"type": "click", "data": {"session_id": "x", "user_code": "alice", "click_target": ""}}),
        ("user_code is longer than 64 characters", page_view("x", "u" * 65, at)),
        ("session_id is not a string", {"type": "click", "data": {"session_id": {"id": 1}, "user_code": "alice", "click_target": "t"}}),
    ]
    events: list[object] = [ok_view]
    for _, event in bad:
        events.append(event)
    events.append(click("ok", "alice", at + timedelta(seconds=5), "email"))
    result = ingest(conn, events)
    assert result["events"] == len(bad) + 2
    assert result["accepted"] == 2
    rejected = {r["index"]: r["reason"] for r in result["rejected"]}
    assert sorted(rejected) == list(range(1, len(bad) + 1))
    for position, (expected, _) in enumerate(bad, start=1):
        assert expected in rejected[position], (position, rejected[position])
    # the valid rest landed, nothing of the invalid ones did
    assert conn.execute("SELECT count(*) FROM analytics_page_views").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM analytics_clicks").fetchone() == (1,)
    assert conn.execute("SELECT session_id, page_views, clicks FROM analytics_sessions").fetchall() == [("ok", 1, 1)]
    # every reject is recorded with the event as received
    recorded = conn.execute(
        "SELECT event_index, reason, event FROM trackschema.analytics_ingest_rejects WHERE batch_id = %s ORDER BY event_index",
        (result["batch_id"],),
    ).fetchall()
    assert [(r[0], r[1]) for r in recorded] == sorted(rejected.items())
    assert json.loads(recorded[1][2]) == bad[1][1]
    assert len(recorded[10][2]) == 2048  # the oversized event, cut


def test_malformed_batches_are_recorded_not_raised(conn: psycopg.Connection) -> None:
    for batch in ('[1, 2]', '{"events": {"type": "click"}}', '"just text"'):
        result = conn.execute("SELECT analytics_ingest(%s::jsonb)", (batch,)).fetchone()[0]  # type: ignore[index]
        assert result["accepted"] == 0
        assert result["rejected"] == [{"index": None, "reason": 'the batch is not an object with an "events" array'}]
    assert conn.execute("SELECT count(*) FROM trackschema.analytics_ingest_rejects WHERE event_index IS NULL").fetchone() == (3,)
    # text the server cannot parse as JSON: the library sends it as a string, so it is kept too
    result = ingest_batch(conn, "{not json", line=7)
    assert result.rejects[0].line == 7 and result.rejects[0].reason.startswith("not valid JSON")
    assert conn.execute("SELECT event FROM trackschema.analytics_ingest_rejects ORDER BY id DESC LIMIT 1").fetchone() == ('"{not json"',)


def test_direct_inserts_keep_counters_through_the_statement_trigger(conn: psycopg.Connection) -> None:
    day = today(conn) - timedelta(days=2)
    ingest(conn, [session("d1", "bob", utc(day, 8)), session("d2", "bob", utc(day, 8))])
    conn.execute(
        """INSERT INTO analytics_page_views (session_id, user_code, page_type, viewed_at)
           SELECT 'd' || (1 + g %% 2), 'bob', 'home', %s::timestamptz + g * interval '1 minute' FROM generate_series(1, 9) g""",
        (utc(day, 9),),
    )
    conn.execute("INSERT INTO analytics_clicks (session_id, user_code, click_target, clicked_at) VALUES ('d1', 'bob', 'x', %s)", (utc(day, 7),))
    assert counter_mismatches(conn) == []
    assert conn.execute("SELECT first_seen, last_seen FROM analytics_sessions WHERE session_id = 'd1'").fetchone() == (
        utc(day, 7), utc(day, 9, 8))


def test_concurrent_ingests_into_the_same_sessions_keep_counters_exact(db_url: str) -> None:
    """Several writers hammer the same sessions (new and existing, in shuffled order): no
    deadlock, no lost update, and every counter equals its raw rows."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        day = today(conn)
    base = utc(day, 0, 1)
    sessions = [f"hot-{n}" for n in range(40)]
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                start.wait()
                for _ in range(12):
                    events = []
                    for sid in rng.sample(sessions, 25):
                        user = f"user{int(sid.split('-')[1]) % 4}"
                        at = base + timedelta(seconds=rng.randint(0, 600))
                        events += [page_view(sid, user, at)] * rng.randint(1, 3) + [click(sid, user, at)] * rng.randint(0, 2)
                        if rng.random() < 0.3:
                            events.append(session(sid, user, at))
                    rng.shuffle(events)
                    result = ingest(conn, events)
                    assert result["rejected"] == []
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "the writers did not finish"
    assert errors == []
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert counter_mismatches(conn) == []
        views, clicks = conn.execute("SELECT sum(page_views), sum(clicks) FROM analytics_sessions").fetchone()  # type: ignore[misc]
        assert views == conn.execute("SELECT count(*) FROM analytics_page_views").fetchone()[0] > 6 * 12 * 25  # type: ignore[index]
        assert clicks == conn.execute("SELECT count(*) FROM analytics_clicks").fetchone()[0]  # type: ignore[index]
        assert conn.execute("SELECT count(*) FROM analytics_sessions").fetchone() == (40,)


def test_ingest_lines_summary(conn: psycopg.Connection) -> None:
    at = utc(today(conn), 0, 5)
    lines = [
        (1, json.dumps({"events": [page_view("l1", "carol", at), click("l1", "carol", at)]}).encode()),
        (2, b"   \n"),
        (3, b'{"events": [{"type": "click", "data": {}}]}'),
        (4, b"not json at all"),
    ]
    summary = ingest_lines(conn, lines, IngestSummary(source="test"))
    assert (summary.lines, summary.batches, summary.events, summary.accepted, summary.rejected) == (4, 3, 3, 2, 2)
    assert [(r.line, r.index) for r in summary.rejects] == [(3, 0), (4, None)]
    assert summary.to_dict()["page_views"] == 1


def test_cli_ingest_file_and_stdin(db_url: str, tmp_path: pytest.TempPathFactory) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        at = utc(today(conn), 0, 10)
    path = tmp_path / "batches.jsonl"  # type: ignore[operator]
    path.write_text(
        json.dumps({"events": [session("c1", "dave", at), page_view("c1", "dave", at), click("c1", "dave", at)]}) + "\n"
        + "{broken\n"
        + json.dumps({"events": [page_view("c2", "dave", at), {"type": "nope", "data": {}}]}) + "\n"
    )
    env = {"TRACKSCHEMA_DATABASE_URL": db_url}
    done = run_cli("ingest", str(path), env=env)
    assert done.returncode == 0, done.stderr
    assert "3 batches, 5 events: 4 accepted, 2 rejected" in " ".join(done.stdout.split())
    assert "unknown type 'nope'" in done.stdout and "not valid JSON" in done.stdout
    # the third line again, on stdin: its page view is the same event, refused as a duplicate
    done = run_cli("ingest", "-", "--json", "--fail-on-reject", env=env, input=path.read_text().splitlines()[2] + "\n")
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert (summary["accepted"], summary["rejected"], summary["duplicates"], summary["source"]) == (0, 2, 1, "stdin")
    assert [r["reason"] for r in summary["rejects"]] == ["duplicate event: this page_view was ingested before", "unknown type 'nope'"]
    with pytest.raises(TrackschemaError, match="cannot read .*missing.jsonl"):
        ingest_source(Settings(database_url=db_url), str(tmp_path / "missing.jsonl"))  # type: ignore[operator]
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM analytics_page_views").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM trackschema.analytics_ingest_rejects").fetchone() == (4,)
        assert counter_mismatches(conn) == []
