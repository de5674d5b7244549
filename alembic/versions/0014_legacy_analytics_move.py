"""Analytics: move the legacy analytics_events rows into the normalized tables, archived.

Adds the machinery; the rows move in batches through a job, not inside this revision
(each batch is its own short transaction, and the legacy table may be large and busy):

    trackschema jobs run legacy-analytics-move [--param batch_size=5000]

- `analytics_events_archive`: every legacy row, as it was, once moved, with where it went
  (`moved_to`) or why it could not be mapped (`reject_reason`). A separate plain table, so
  it is unaffected when analytics_events itself is converted to a partitioned table.
- `analytics_move_legacy_events(batch_size)`: one atomic batch: DELETE ... RETURNING from
  analytics_events feeds the inserts into the normalized tables and the archive in the
  same statement (no row lost or duplicated, also while legacy rows keep arriving).
- `analytics_restore_legacy_events(batch_size)`: the documented rollback, batch by batch:

      trackschema jobs run legacy-analytics-restore

  puts archived rows back into analytics_events and removes the page views, clicks and
  (empty) sessions the move made of them.
- `trackschema.analytics_legacy_sessions`: the sessions the move created.

Downgrade drops these objects; it refuses while the archive holds rows (run the restore
job first: the archive is the only copy of the legacy rows).

Revision ID: 0014_legacy_analytics_move
Revises: 0013_analytics_rls
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file

revision: str = "0014_legacy_analytics_move"
down_revision: str | None = "0013_analytics_rls"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE analytics_events_archive (
    id            uuid PRIMARY KEY,
    event_type    text NOT NULL,
    event_data    jsonb NOT NULL,
    session_id    text,
    created_at    timestamptz NOT NULL,
    archived_at   timestamptz NOT NULL DEFAULT now(),
    moved_to      text CONSTRAINT analytics_events_archive_moved_to_check
                      CHECK (moved_to IN ('analytics_page_views', 'analytics_clicks', 'analytics_sessions')),
    reject_reason text,
    CONSTRAINT analytics_events_archive_moved_or_rejected CHECK ((moved_to IS NULL) <> (reject_reason IS NULL))
);
COMMENT ON TABLE analytics_events_archive IS
    'legacy analytics_events rows after the move to the normalized tables (moved_to), or why they could not be moved';
CREATE INDEX idx_analytics_events_archive_archived_at ON analytics_events_archive (archived_at);

CREATE TABLE trackschema.analytics_legacy_sessions (
    session_id text PRIMARY KEY
);
"""

GUARD = """
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM analytics_events_archive) THEN
        RAISE EXCEPTION 'refusing to drop analytics_events_archive: it holds moved legacy analytics rows'
            USING HINT = 'put them back first: trackschema jobs run legacy-analytics-restore';
    END IF;
END
$guard$;
"""


def upgrade() -> None:
    op.execute(TABLES)
    execute_sql_file("functions/analytics_move_legacy_events.v1.sql")
    execute_sql_file("functions/analytics_restore_legacy_events.v1.sql")


def downgrade() -> None:
    op.execute(GUARD)
    op.execute("DROP FUNCTION analytics_restore_legacy_events(integer)")
    op.execute("DROP FUNCTION analytics_move_legacy_events(integer)")
    op.execute("DROP TABLE trackschema.analytics_legacy_sessions")
    op.execute("DROP TABLE analytics_events_archive")
