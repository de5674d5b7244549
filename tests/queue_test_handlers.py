"""Queue handlers used by tests/tracking/test_queue.py (importable by worker subprocesses as
`tests.queue_test_handlers:NAME`).

`record` writes one row per event into `queue_ledger` in the worker's transaction, then
sleeps `LEDGER_SLEEP` seconds inside it (so a test can kill a worker mid-batch). The
ledger has no unique constraint: an event processed twice would show up twice.
"""

from __future__ import annotations

import os

import psycopg

from trackschema.tracking.queue import QueueEvent, event_handler

LEDGER = """CREATE TABLE IF NOT EXISTS queue_ledger (
    event_id   bigint NOT NULL,
    attempts   integer NOT NULL,
    worker_pid integer NOT NULL DEFAULT pg_backend_pid(),
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""


@event_handler
def record(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    conn.execute(
        "INSERT INTO queue_ledger (event_id, attempts) SELECT * FROM unnest(%s::bigint[], %s::int[])",
        ([e.id for e in events], [e.attempts for e in events]),
    )
    delay = float(os.environ.get("LEDGER_SLEEP", "0"))
    if delay:
        conn.execute("SELECT pg_sleep(%s)", (delay,))


@event_handler
def always_fail(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    raise RuntimeError(f"downstream service refused event {events[0].id}")


@event_handler
def fail_odd_payloads(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    """Record the events, but refuse the whole batch if any payload has "bad": true."""
    bad = [e.id for e in events if e.payload.get("bad")]
    if bad:
        raise ValueError(f"bad payload in event {bad[0]}")
    record(conn, events)
