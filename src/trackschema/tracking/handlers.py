"""Queue handlers for the propagation flow (docs/design.md#propagation).

    user action   -> activity_log          (the tracking triggers)
    entity change -> entity_events         (the tracking triggers)
    achievement criteria met -> entity_achievements   (here)
    goal progress            -> goal_events           (here)

`propagate(conn, events)` is the default handler of `trackschema queue work`. It reads
the batch's entity_events rows and applies two rules, set-based, inside the worker's
transaction (so its writes commit exactly once, together with the events' removal):

- goal progress: an `entities` INSERT or UPDATE whose new `data` carries `goal_id` (a
  UUID) and `progress` (a number) writes a `goal_events` row (event_type 'progress',
  meta.target = data.target or 100). When progress reaches the target the entity gets
  the achievement `goal_reached:<goal_id>`.
- engagement: an `entity_touchpoints` INSERT that brings the entity to
  ENGAGED_TOUCHPOINTS touchpoints gives it the achievement `engaged`.

Achievements are unique per entity and type (a repeat is ignored) and only given to
entities that still exist. An event whose goal data is malformed raises
`PropagationError`: the worker retries it alone and, after max_attempts, leaves it dead
with the message, so bad data is kept and explained, never silently dropped.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from trackschema.tracking.queue import QueueEvent, event_handler

ENGAGED_TOUCHPOINTS = 3
DEFAULT_GOAL_TARGET = 100

_UUID = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"


class PropagationError(Exception):
    """An event carries data the propagation rules cannot use."""


_GOAL_CANDIDATES = sql.SQL("""
SELECT ee.id, ee.entity_id, ee.occurred_at, ee.new_state -> 'data' AS data
  FROM entity_events ee
 WHERE ee.id = ANY (%(ids)s)
   AND ee.table_name = 'entities' AND ee.action IN ('INSERT', 'UPDATE')
   AND jsonb_typeof(ee.new_state -> 'data') = 'object'
   AND (ee.new_state -> 'data') ?& ARRAY['goal_id', 'progress']
""")

_INVALID_GOALS = sql.SQL("""
SELECT c.id, c.data ->> 'goal_id', c.data -> 'progress', c.data -> 'target'
  FROM ({candidates}) c
 WHERE NOT (coalesce(c.data ->> 'goal_id', '') ~ %(uuid)s)
    OR jsonb_typeof(c.data -> 'progress') <> 'number'
    OR (c.data ? 'target' AND jsonb_typeof(c.data -> 'target') <> 'number')
 LIMIT 1
""").format(candidates=_GOAL_CANDIDATES)

_WRITE_GOALS = sql.SQL("""
WITH goals AS (
    SELECT c.id AS event_id, c.entity_id, c.occurred_at, (c.data ->> 'goal_id')::uuid AS goal_id,
           (c.data ->> 'progress')::numeric AS progress,
           coalesce((c.data ->> 'target')::numeric, %(default_target)s) AS target
      FROM ({candidates}) c
), progress AS (
    INSERT INTO goal_events (goal_id, entity_id, event_type, progress, meta, source_event_id, occurred_at)
    SELECT goal_id, entity_id, 'progress', progress, jsonb_build_object('target', target), event_id, occurred_at
      FROM goals
    RETURNING 1
), reached AS (
    INSERT INTO entity_achievements (entity_id, achievement_type, criteria, source_event_id, achieved_at)
    SELECT DISTINCT ON (g.entity_id, g.goal_id)
           g.entity_id, 'goal_reached:' || g.goal_id,
           jsonb_build_object('goal_id', g.goal_id, 'target', g.target, 'progress', g.progress), g.event_id, g.occurred_at
      FROM goals g
     WHERE g.progress >= g.target AND EXISTS (SELECT 1 FROM entities e WHERE e.id = g.entity_id)
     ORDER BY g.entity_id, g.goal_id, g.occurred_at
    ON CONFLICT ON CONSTRAINT entity_achievements_once DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM progress), (SELECT count(*) FROM reached)
""").format(candidates=_GOAL_CANDIDATES)

_WRITE_ENGAGED = """
WITH touched AS (
    SELECT DISTINCT ON (ee.entity_id) ee.entity_id, ee.id AS event_id, ee.occurred_at
      FROM entity_events ee
     WHERE ee.id = ANY (%(ids)s) AND ee.table_name = 'entity_touchpoints' AND ee.action = 'INSERT'
     ORDER BY ee.entity_id, ee.occurred_at DESC
), engaged AS (
    INSERT INTO entity_achievements (entity_id, achievement_type, criteria, source_event_id, achieved_at)
    SELECT t.entity_id, 'engaged', jsonb_build_object('touchpoints', c.n, 'threshold', %(threshold)s::int), t.event_id, t.occurred_at
      FROM touched t
      JOIN entities e ON e.id = t.entity_id
     CROSS JOIN LATERAL (SELECT count(*) AS n FROM entity_touchpoints tp WHERE tp.entity_id = t.entity_id) c
     WHERE c.n >= %(threshold)s
    ON CONFLICT ON CONSTRAINT entity_achievements_once DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM engaged
"""


@event_handler
def propagate(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    """Apply the propagation rules to a batch of tracking events (see the module docstring)."""
    ids = [e.entity_event_id for e in events if e.entity_event_id is not None]
    if not ids:
        return
    bad = conn.execute(_INVALID_GOALS, {"ids": ids, "uuid": _UUID}).fetchone()
    if bad is not None:
        raise PropagationError(
            f"entity_events {bad[0]}: goal data needs a UUID goal_id and numeric progress/target, "
            f"got goal_id={bad[1]!r} progress={bad[2]!r} target={bad[3]!r}"
        )
    conn.execute(_WRITE_GOALS, {"ids": ids, "default_target": DEFAULT_GOAL_TARGET})
    conn.execute(_WRITE_ENGAGED, {"ids": ids, "threshold": ENGAGED_TOUCHPOINTS})


@event_handler
def noop(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    """Accept every event and do nothing: for draining a queue or measuring the queue itself."""
