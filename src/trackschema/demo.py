"""The guided demo: a sandbox, every revision, sample data, status.

`run()` reports each step through a callback so the CLI can render it; it works on a
fresh `trackschema_demo` database inside the sandbox, so it can be run again and again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg import sql

from trackschema import migrate, partitions, sandbox, status
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


def run(on_step: Callable[[DemoStep], None] = lambda step: None, *, stop_sandbox: bool = False) -> DemoResult:
    """Sandbox → fresh demo database → upgrade head → sample data → status."""
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
    step("partitions list", lambda: _partitions(settings))
    result.status = step("status", lambda: ("revision and catalog health", status.collect(settings)))  # type: ignore[assignment]
    if stop_sandbox:
        step("stop sandbox", lambda: ("sandbox stopped and removed", sandbox.stop()))
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
