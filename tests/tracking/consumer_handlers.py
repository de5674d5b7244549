"""Event handlers for the consumer tests (importable by worker subprocesses as
`tests.tracking.consumer_handlers:NAME`).

`record` writes one `consumer_ledger` row per event in the worker's transaction. The
ledger has no unique constraint: an event handled twice would show up twice, and
`worker_pid` tells which worker's backend committed it.
"""

from __future__ import annotations

import psycopg

from trackschema.tracking.queue import QueueEvent, event_handler

LEDGER = """CREATE TABLE IF NOT EXISTS consumer_ledger (
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    event_id   uuid,
    entity_id  uuid,
    attempts   integer NOT NULL,
    worker_pid integer NOT NULL DEFAULT pg_backend_pid(),
    handled_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""


@event_handler
def record(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    """One ledger row per event, in the order given."""
    conn.execute(
        """INSERT INTO consumer_ledger (event_id, entity_id, attempts)
           SELECT e, n, a FROM unnest(%s::uuid[], %s::uuid[], %s::int[]) WITH ORDINALITY AS u(e, n, a, o) ORDER BY o""",
        ([e.entity_event_id for e in events], [e.entity_id for e in events], [e.attempts for e in events]),
    )


@event_handler
def refuse_poison(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    """Record the events, but refuse the whole batch if any change set data.poison to true."""
    bad = conn.execute(
        "SELECT id FROM entity_events WHERE id = ANY (%s) AND (new_state -> 'data' ->> 'poison')::boolean",
        ([e.entity_event_id for e in events],),
    ).fetchone()
    if bad is not None:
        raise ValueError(f"poison event {bad[0]}")
    record(conn, events)


@event_handler
def always_fail(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    raise RuntimeError(f"downstream service refused event {events[0].entity_event_id}")
