"""Promotion expand: typed columns for context_events.metadata keys, kept in step by a dual-write trigger.

Seed 004, Proposals 1-3 and "Migration & Rollback Plan", stage 1 step 1 (additive) and the
dual-write period. For every promotion declared when this was released (frozen in
trackschema.promotions.released_2026_11):
`metadata.source` → `source_type` (text), `metadata.roadmap_item_id` →
`source_roadmap_item_id` (uuid), `metadata.itinerary_item_id` → `source_itinerary_item_id`
(uuid). The columns are nullable without defaults, so adding them touches the catalog only
(ACCESS EXCLUSIVE for milliseconds, bounded by lock_timeout and retried by env.py).

Installs the promotion helpers `jsonb_promote_text`, `jsonb_promote_uuid` and
`jsonb_promotion_problem`, `trackschema.record_promotion_reject`, the dual-write function
(version 1) and its trigger, and the bookkeeping tables `trackschema.promotion_rejects`,
`trackschema.backfill_checkpoints` and `trackschema.backfill_batches`. Existing rows are not
touched here: `trackschema backfill run` fills them (a job, not a migration).

Downgrade drops all of it. The columns only ever hold copies of the metadata keys (the
trigger writes every column value back into metadata), so no data is lost; the rejects
and checkpoints are bookkeeping a new backfill recomputes.

Revision ID: 0020_promotion_expand
Revises: 0014_legacy_analytics_move
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file
# Pinned: the declarations and SQL builders as released, not the live modules.
from trackschema.promotions import released_2026_11 as ops
from trackschema.promotions.released_2026_11 import PROMOTIONS

revision: str = "0020_promotion_expand"
down_revision: str | None = "0014_legacy_analytics_move"
branch_labels = None
depends_on = None


def upgrade() -> None:
    promotions = list(PROMOTIONS)
    ops.add_columns(promotions)
    op.execute(ops.BOOKKEEPING)
    execute_sql_file("functions/jsonb_promote_text.v1.sql")
    execute_sql_file("functions/jsonb_promote_uuid.v1.sql")
    execute_sql_file("functions/jsonb_promotion_problem.v1.sql")
    execute_sql_file("functions/record_promotion_reject.v1.sql")
    ops.install_dual_write("functions/context_events_promote_metadata.v1.sql", "triggers/context_events_promote_metadata.v1.sql")


def downgrade() -> None:
    ops.drop_dual_write()
    op.execute("DROP FUNCTION trackschema.record_promotion_reject(text, uuid, jsonb, text)")
    for signature in reversed(ops.HELPER_FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
    op.execute(ops.DROP_BOOKKEEPING)
    ops.drop_columns(list(PROMOTIONS))
