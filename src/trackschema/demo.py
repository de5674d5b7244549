"""The guided demo: a sandbox, every revision, sample data, a promotion backfill, status.

`run()` reports each step through a callback so the CLI can render it; it works on a
fresh `trackschema_demo` database inside the sandbox, so it can be run again and again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from trackschema import migrate, sandbox, status
from trackschema.promotions import backfill, progress
from trackschema.db import connect
from trackschema.settings import Settings, with_database

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


def run(on_step: Callable[[DemoStep], None] = lambda step: None, *, stop_sandbox: bool = False,
        backfill_bar: Callable[[], AbstractContextManager[Any]] | None = None) -> DemoResult:
    """Sandbox → fresh demo database → upgrade head → sample data → promotion backfill → status.

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
    result.url = with_database(server_url, DEMO_DATABASE)
    settings = Settings.from_env(database_url=result.url)
    step("fresh database", lambda: (_recreate(server_url), None))
    step("upgrade head", lambda: _upgrade(settings))
    step("sample data", lambda: (_load_sample(settings), None))
    step("promotion backfill", lambda: _promote(settings, backfill_bar))
    result.status = step("status", lambda: ("revision and catalog health", status.collect(settings)))  # type: ignore[assignment]
    if stop_sandbox:
        step("stop sandbox", lambda: ("sandbox stopped and removed", sandbox.stop()))
    return result


def _start_sandbox() -> tuple[str, object]:
    info = sandbox.start()
    verb = "started" if info.created else "reused"
    return f"{verb} {info.detail}", info


def _recreate(server_url: str) -> str:
    with connect(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DEMO_DATABASE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DATABASE)))
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
