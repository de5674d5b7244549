"""The event_queue worker contract: claim, complete, fail.

`event_queue_claim(worker, batch, visibility)` leases ready events with
FOR UPDATE SKIP LOCKED (a lease that runs out makes a crashed worker's events claimable
again; an event whose worker died on its last attempt becomes 'dead');
`event_queue_complete(ids, token)` deletes finished events in the handler's transaction;
`event_queue_fail(id, token, error, base_delay, max_delay)` schedules a retry with
exponential backoff or, after max_attempts, marks the event 'dead' keeping the error.
The worker loop is `trackschema queue work` (src/trackschema/queue.py).

Functions only: no lock beyond the catalog, no data. Downgrade drops them.

Revision ID: 0004_event_queue
Revises: 0003_entity_tracking
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file

revision: str = "0004_event_queue"
down_revision: str | None = "0003_entity_tracking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_sql_file("functions/event_queue_claim.v1.sql")
    execute_sql_file("functions/event_queue_complete.v1.sql")
    execute_sql_file("functions/event_queue_fail.v1.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION event_queue_fail(bigint, uuid, text, interval, interval)")
    op.execute("DROP FUNCTION event_queue_complete(bigint[], uuid)")
    op.execute("DROP FUNCTION event_queue_claim(text, integer, interval)")
