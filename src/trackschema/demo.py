"""The guided demo: a sandbox, every revision, sample data, a promotion backfill,
tracking and the queue, analytics, partitions, refreshed views, status.

`run()` reports each step through a callback so the CLI can render it; it works on a
fresh `trackschema_demo` database inside the sandbox, so it can be run again and again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from trackschema import status
from trackschema.jobs import registry as jobs
from trackschema.migrations import runner as migrate
from trackschema.partitions import monthly as partitions
from trackschema.runtime import sandbox
from trackschema.runtime import scratch
from trackschema.promotions import backfill, progress
from trackschema.runtime.db import connect
from trackschema.runtime.settings import Settings

DEMO_DATABASE = "trackschema_demo"

SAMPLE_DATA = """
INSERT INTO entity_types (name, display_name) VALUES
    ('contact', 'Contact'), ('address', 'Address'), ('organisation', 'Organisation');

WITH people AS (
    SELECT g, uuid_generate_v7() AS id FROM generate_series(1, 50) AS g
), ins AS (
    INSERT INTO entities (id, entity_type_id, status)
    SELECT id, (SELECT id FROM entity_types WHERE name = 'contact'), 'ACTIVE' FROM people
)
INSERT INTO contacts (id, first_name, last_name, email)
SELECT id, 'Ada' || g, 'Lovelace' || g, 'ada' || g || '@example.com' FROM people;

INSERT INTO roadmap_items (master_project_id, title, status, start_date)
SELECT '00000000-0000-7000-8000-000000000001', 'Milestone ' || g,
       (ARRAY['active', 'completed', 'blocked'])[1 + g % 3], current_date + g
FROM generate_series(1, 30) AS g;

INSERT INTO context_events (context_id, created_by, title, start_at, metadata)
SELECT '00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000a1',
       'Event ' || g, now() + make_interval(days => g % 60),
       CASE g % 4
           WHEN 0 THEN jsonb_build_object('source', 'guardrails',
                        'roadmap_item_id', (SELECT id FROM roadmap_items ORDER BY id OFFSET g % 30 LIMIT 1))
           WHEN 1 THEN jsonb_build_object('source', 'trip', 'itinerary_item_id', gen_random_uuid())
           WHEN 2 THEN jsonb_build_object('source', 'planner')
           ELSE '{}'::jsonb
       END
FROM generate_series(1, 400) AS g;

INSERT INTO analytics_sessions (session_id, user_code, share_code, first_seen, last_seen)
SELECT 's' || g, 'user' || (g % 5), 'share' || (g % 3), now() - make_interval(hours => g), now() - make_interval(hours => g)
FROM generate_series(1, 200) AS g;

INSERT INTO analytics_page_views (session_id, user_code, share_code, page_type, viewed_at)
SELECT 's' || (1 + g % 200), 'user' || ((1 + g % 200) % 5), 'share' || ((1 + g % 200) % 3),
       (ARRAY['home', 'contact', 'profile', 'portfolio'])[1 + g % 4], now() - make_interval(mins => g)
FROM generate_series(1, 1000) AS g;

INSERT INTO analytics_events (event_type, event_data, created_at)
SELECT (ARRAY['view', 'click'])[1 + g % 2], jsonb_build_object('userCode', 'user' || (g % 5), 'page', 'home'),
       now() - make_interval(mins => g)
FROM generate_series(1, 1000) AS g;
"""


@dataclass
class DemoStep:
    title: str
    detail: str
    seconds: float
    data: object = None


@dataclass
class DemoResult:
    url: str
    steps: list[DemoStep] = field(default_factory=list)
    status: status.StatusPage | None = None
    sandbox_stopped: bool = False


def run(on_step: Callable[[DemoStep], None] = lambda step: None, *, stop_sandbox: bool = False,
        backfill_bar: Callable[[], AbstractContextManager[Any]] | None = None) -> DemoResult:
    """Sandbox → fresh demo database → upgrade head → sample data → promotion backfill →
    tracking and queue → analytics → partitions → refreshed views and the job history → status.

    `backfill_bar` makes a context manager yielding the backfill's progress callback (the
    CLI passes a Rich progress bar)."""
    result = DemoResult(url="")

    def step(title: str, fn: Callable[[], tuple[str, object]]) -> object:
        started = time.monotonic()
        detail, data = fn()
        done = DemoStep(title, detail, time.monotonic() - started, data)
        result.steps.append(done)
        on_step(done)
        return data

    info = step("sandbox", lambda: _start_sandbox())
    server_url = info.url  # type: ignore[attr-defined]
    result.url = scratch.database_url(server_url, DEMO_DATABASE)
    settings = Settings.from_env(database_url=result.url)
    step("fresh database", lambda: (_recreate(server_url), None))
    step("upgrade head", lambda: _upgrade(settings))
    step("sample data", lambda: (_load_sample(settings), None))
    step("promotion backfill", lambda: _promote(settings, backfill_bar))
    step("tracking and queue", lambda: _tracking_and_queue(settings))
    step("analytics", lambda: _analytics(settings))
    step("partitions list", lambda: _partitions(settings))
    step("refresh views", lambda: _refresh_views(settings))
    step("job history", lambda: _job_history(settings))
    result.status = step("status", lambda: ("revision and catalog health", status.collect(settings)))  # type: ignore[assignment]
    if stop_sandbox:
        step("stop sandbox", lambda: ("sandbox stopped and removed", sandbox.stop()))
        result.sandbox_stopped = True
    return result


def _partitions(settings: Settings) -> tuple[str, object]:
    """`trackschema partitions list`: the monthly partitions of the partitioned tables."""
    infos = partitions.list_partitions(settings)
    per_table: dict[str, list[partitions.PartitionInfo]] = {}
    for info in infos:
        per_table.setdefault(info.parent, []).append(info)
    parts = [
        f"{parent}: {len(items)} partitions, {sum(i.rows for i in items):,} rows, newest ends {max(i.upper for i in items if i.upper):%Y-%m-%d}"
        for parent, items in per_table.items()
    ]
    return "; ".join(parts) or "no partitioned tables", infos


def _start_sandbox() -> tuple[str, object]:
    info = sandbox.start()
    verb = "started" if info.created else "reused"
    return f"{verb} {info.detail}", info


def _recreate(server_url: str) -> str:
    scratch.create_database(server_url, DEMO_DATABASE)
    return f"database {DEMO_DATABASE} created"


def _upgrade(settings: Settings) -> tuple[str, object]:
    outcome = migrate.upgrade(settings, "head")
    return f"{len(outcome.applied)} revisions applied, now at {', '.join(outcome.after)}", outcome


def _load_sample(settings: Settings) -> str:
    with connect(settings.require_url(), autocommit=False) as conn:
        conn.execute(SAMPLE_DATA)
        conn.commit()
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM entities), (SELECT count(*) FROM context_events),
                      (SELECT count(*) FROM analytics_page_views), (SELECT count(*) FROM analytics_events)"""
        ).fetchone()
        conn.execute("ANALYZE")
    assert counts is not None
    return f"{counts[0]} entities, {counts[1]} context events, {counts[2]} page views, {counts[3]} legacy analytics events"


# Dashboard inputs the core sample lacks: addresses, touchpoints, clicks, calendar projections.
DASHBOARD_SAMPLE = """
WITH places AS (
    SELECT g, uuid_generate_v7() AS id FROM generate_series(1, 20) AS g
), ins AS (
    INSERT INTO entities (id, entity_type_id, status)
    SELECT id, (SELECT id FROM entity_types WHERE name = 'address'), 'ACTIVE' FROM places
), addr AS (
    INSERT INTO addresses (id, street, city, state, postal_code)
    SELECT id, g || ' Main St', 'Springfield', 'IL', '627' || lpad(g::text, 2, '0') FROM places
    RETURNING id
)
INSERT INTO address_contacts (address_id, contact_id, is_primary)
SELECT a.id, c.id, true
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM addr) a
  JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM contacts) c USING (n);

INSERT INTO entity_touchpoints (entity_id, touchpoint_type, channel, occurred_at)
SELECT c.id, 'call', 'phone', now() - make_interval(days => g)
  FROM contacts c CROSS JOIN generate_series(1, 3) AS g
 WHERE c.first_name LIKE 'Ada1%';

INSERT INTO analytics_clicks (session_id, user_code, share_code, click_target, clicked_at)
SELECT 's' || (1 + g % 200), 'user' || ((1 + g % 200) % 5), 'share' || ((1 + g % 200) % 3),
       (ARRAY['phone', 'email', 'whatsapp'])[1 + g % 3], now() - make_interval(mins => 3 * g)
FROM generate_series(1, 300) AS g;

WITH ev AS (
    INSERT INTO calendar_events (user_id, title, start_at)
    SELECT '00000000-0000-7000-8000-0000000000a1', 'Meeting ' || g, now() + make_interval(days => g)
    FROM generate_series(1, 10) AS g
    RETURNING id
)
INSERT INTO calendar_projections (calendar_event_id, target_user_id, status)
SELECT ev.id, u.id, (ARRAY['pending', 'accepted', 'declined'])[1 + (row_number() OVER ()) % 3]
  FROM ev CROSS JOIN (VALUES ('00000000-0000-7000-8000-0000000000b1'::uuid), ('00000000-0000-7000-8000-0000000000b2'::uuid)) AS u (id);
"""


def _refresh_views(settings: Settings) -> tuple[str, object]:
    """Dashboard inputs, then `refresh-matviews` twice: the second run skips the fresh views."""
    with connect(settings.require_url(), autocommit=False) as conn:
        conn.execute(DASHBOARD_SAMPLE)
        conn.commit()
    first = jobs.run(settings, "refresh-matviews")
    second = jobs.run(settings, "refresh-matviews", {"if_older_than": "5m"})
    with connect(settings.require_url()) as conn:
        rows = conn.execute(
            """SELECT (SELECT count(*) FROM dashboard_statistics), (SELECT count(*) FROM contact_management_view),
                      (SELECT count(*) FROM analytics_dashboard)"""
        ).fetchone()
    assert rows is not None and first.result is not None and second.result is not None
    detail = (
        f"{len(first.result['refreshed'])} views refreshed concurrently in {first.seconds or 0:.2f}s "
        f"(dashboard_statistics {rows[0]} rows, contact_management_view {rows[1]}, analytics_dashboard {rows[2]}); "
        f"again with --if-older-than 5m: {len(second.result['skipped'])} skipped as fresh"
    )
    return detail, (first, second)


def _job_history(settings: Settings) -> tuple[str, object]:
    runs = jobs.history(settings, limit=5)
    described = "; ".join(f"run {r.id} {r.job} {r.status} in {r.seconds or 0:.2f}s" for r in reversed(runs))
    return f"{len(runs)} runs in trackschema.job_runs: {described} (trackschema jobs history)", runs


def _tracking_and_queue(settings: Settings) -> tuple[str, object]:
    """Changes through the function layer are tracked; one queue worker run propagates
    them (goal progress -> goal_events, criteria met -> entity_achievements)."""
    from trackschema.tracking import queue

    with connect(settings.require_url()) as conn:
        conn.execute("SELECT set_config('app.current_user_id', '00000000-0000-7000-8000-0000000000a1', false)")
        goal = "00000000-0000-7000-8000-00000000901a"
        grace = conn.execute(
            "SELECT fn_create_entity('contact', jsonb_build_object('first_name', 'Grace', 'last_name', 'Hopper', 'goal_id', %s::text, 'progress', 60))",
            (goal,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("""SELECT fn_update_entity(%s, '{"progress": 100}')""", (grace,))
        for kind in ("call", "email", "meeting"):
            conn.execute("INSERT INTO entity_touchpoints (entity_id, touchpoint_type) VALUES (%s, %s)", (grace, kind))
        events = conn.execute("SELECT count(*) FROM entity_events").fetchone()[0]  # type: ignore[index]
    work = queue.work(settings, options=queue.WorkerOptions(once=True, batch=500, name="demo"))
    with connect(settings.require_url()) as conn:
        goals, achievements = conn.execute(
            "SELECT (SELECT count(*) FROM goal_events), (SELECT count(*) FROM entity_achievements)"
        ).fetchone()  # type: ignore[misc]
    return (
        f"{events} entity events tracked; a queue worker completed {work.completed} of them "
        f"({work.events_per_second:,.0f}/s) and wrote {goals} goal events and {achievements} achievements",
        work,
    )


def _analytics(settings: Settings) -> tuple[str, object]:
    """Ingest a week of sample traffic (a few events spoiled on purpose), move the legacy
    rows, roll the closed days up, and show user1's dashboard for the last 7 days."""
    from datetime import timedelta

    from trackschema.analytics import dashboard, ingest, legacy, rollups, sample
    from trackschema.analytics.dates import db_now, db_today

    with connect(settings.require_url()) as conn:
        batches = sample.sample_batches(invalid_every=97, now=db_now(conn))
        lines = enumerate((line.encode() for line in batches), start=1)
        summary = ingest.ingest_lines(conn, lines, ingest.IngestSummary(source="sample traffic"))
        moved = legacy.move_legacy(conn)
        aggregated = rollups.aggregate_pending(conn)
        today = db_today(conn)
        board = dashboard.dashboard(conn, "user1", today - timedelta(days=6), today)
    rows = "\n".join(
        f"    {d.day}  {d.total_sessions:4d} sessions {d.total_page_views:5d} views {d.total_clicks:4d} clicks  ({d.source})"
        for d in board.days
    )
    detail = (
        f"{summary.accepted:,} events ingested in {summary.batches} batches ({summary.rejected} rejected with reasons), "
        f"{moved.moved:,} legacy rows moved ({moved.rejected} archived unmapped), {len(aggregated)} days rolled up; "
        f"user1, last 7 days (trackschema analytics dashboard user1):\n{rows}"
    )
    return detail, board


# Rows an old client wrote with only metadata keys, some of them not promotable.
LEGACY_BAD_ROWS = """
INSERT INTO context_events (context_id, created_by, title, start_at, metadata) VALUES
    ('00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000a1', 'Emailed in', now(), '{"source": "email"}'),
    ('00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000a1', 'Numbered', now(), '{"source": 42}'),
    ('00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000a1', 'Typo', now(), '{"source": "guardrails", "roadmap_item_id": "not-a-uuid"}'),
    ('00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000a1', 'Gone', now(), '{"source": "guardrails", "roadmap_item_id": "00000000-0000-7000-8000-00000000dead"}')
"""


def _promote(settings: Settings, bar: Callable[[], AbstractContextManager[Any]] | None) -> tuple[str, object]:
    """The sample context_events carry source / roadmap_item_id / itinerary_item_id in
    metadata only; the backfill engine fills the promoted columns, batch by batch (small,
    throttled batches so the bar has something to show), and records what it cannot promote."""
    with connect(settings.require_url()) as conn:
        conn.execute(LEGACY_BAD_ROWS)
    options = backfill.BackfillOptions(batch_time=0.05, first_batch_rows=40, sleep=0.05)
    with (bar() if bar else nullcontext(None)) as on_progress:
        outcome = backfill.run(settings, None, options, on_progress=on_progress)
    rates = progress.progress(settings)
    run = outcome.tables[0]
    detail = (f"{run.rows_done} rows promoted in {run.batches} batches, {run.rows_rejected} with a value that cannot be "
              f"promoted (`trackschema backfill rejects source_type`); NULL rates: "
              + ", ".join(f"{r.column} {r.null_rate:.1%}" for r in rates))
    return detail, rates
