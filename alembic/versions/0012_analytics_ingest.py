"""Analytics: batch ingestion with per-batch session counters and recorded rejects.

Adds (seed 003, "Data Flow"):
- `analytics_ingest(batch jsonb) -> jsonb`: one call loads one batch of session, page-view
  and click events set-based; sessions are upserted once per batch in session_id order,
  their counters raised once per session per batch; invalid events are recorded in
  `trackschema.analytics_ingest_rejects` and reported, the valid rest lands.
- `trackschema.analytics_count_session_events()`, a statement-level trigger on
  `analytics_page_views` and `analytics_clicks` that keeps the session counters right for
  rows inserted any other way (direct INSERTs, the legacy move). It replaces the seed's
  per-row `increment_session_page_views()` / `increment_session_clicks()` calls.
- Parse helpers `trackschema.analytics_try_timestamptz(jsonb)`, `trackschema.analytics_try_uuid(text)`.

EXECUTE on analytics_ingest is revoked from PUBLIC (it is SECURITY DEFINER); revision
0013 grants it to the ingest role.

Downgrade drops the function, the trigger and the rejects table. The rejects are a record
of refused input: it refuses while the table holds rows unless run with `--allow-data-loss`.

Revision ID: 0012_analytics_ingest
Revises: 0011_analytics_rollups
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file, refuse_data_loss

revision: str = "0012_analytics_ingest"
down_revision: str | None = "0011_analytics_rollups"
branch_labels = None
depends_on = None

REJECTS = """
-- Events analytics_ingest refused: which batch, where in it, why, and the event as received.
CREATE TABLE trackschema.analytics_ingest_rejects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id    uuid NOT NULL,
    event_index integer,
    event_type  text,
    reason      text NOT NULL,
    event       text,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN trackschema.analytics_ingest_rejects.event_index IS
    '0-based position in the batch''s events array; NULL when the batch itself was malformed';
COMMENT ON COLUMN trackschema.analytics_ingest_rejects.event IS 'the event as received, cut to 2048 characters';
CREATE INDEX analytics_ingest_rejects_rejected_at ON trackschema.analytics_ingest_rejects (rejected_at);
CREATE INDEX analytics_ingest_rejects_batch ON trackschema.analytics_ingest_rejects (batch_id);
"""

TRIGGERS = """
CREATE TRIGGER analytics_page_views_count_sessions AFTER INSERT ON analytics_page_views
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_count_session_events();
CREATE TRIGGER analytics_clicks_count_sessions AFTER INSERT ON analytics_clicks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_count_session_events();
"""


def upgrade() -> None:
    op.execute(REJECTS)
    execute_sql_file("functions/analytics_try_timestamptz.v1.sql")
    execute_sql_file("functions/analytics_try_uuid.v1.sql")
    execute_sql_file("functions/analytics_ingest.v1.sql")
    op.execute("REVOKE EXECUTE ON FUNCTION analytics_ingest(jsonb) FROM PUBLIC")
    execute_sql_file("triggers/analytics_count_session_events.v1.sql")
    op.execute(TRIGGERS)


def downgrade() -> None:
    refuse_data_loss(["trackschema.analytics_ingest_rejects"], "drop the recorded ingest rejects")
    op.execute("DROP TRIGGER analytics_clicks_count_sessions ON analytics_clicks")
    op.execute("DROP TRIGGER analytics_page_views_count_sessions ON analytics_page_views")
    op.execute("DROP FUNCTION trackschema.analytics_count_session_events()")
    op.execute("DROP FUNCTION analytics_ingest(jsonb)")
    op.execute("DROP FUNCTION trackschema.analytics_try_uuid(text)")
    op.execute("DROP FUNCTION trackschema.analytics_try_timestamptz(jsonb)")
    op.execute("DROP TABLE trackschema.analytics_ingest_rejects")
