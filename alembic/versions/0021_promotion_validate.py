"""Promotion validate: NULL-rate gate, constraints NOT VALID then VALIDATE, indexes CONCURRENTLY.

Seed 004, "Migration & Rollback Plan", stage 1 step 3 (constraints and indexes), after the
backfill. Steps, each in its own transaction so that no strong lock is held while a table
is scanned:

1. Gate: refuses while a promotion's NULL rate (rows with the key, an empty column and no
   recorded reject, over rows with the key) is above 1%, saying which backfill to run. When
   at most 10 000 rows are left to fill (setting trackschema.inline_fill_limit) the revision
   fills them itself. The gate is a DO
   block, so `upgrade --sql` output checks it on the server too.
2. `source_type` CHECK (guardrails, trip, planner) and `source_roadmap_item_id` FOREIGN KEY
   to roadmap_items ON DELETE SET NULL, both NOT VALID (brief ACCESS EXCLUSIVE / SHARE ROW
   EXCLUSIVE locks, lock_timeout and retries), and, in the same transaction, version 2 of
   the dual-write function, which looks roadmap items up so the new foreign key never
   fails a JSON write.
3. Column values the constraints would reject are set to NULL (the trigger keeps the JSON
   key and records a reject): references to roadmap items deleted since they were
   promoted, values written straight into source_type that are not allowed.
4. VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE: writes go on) and CREATE INDEX
   CONCURRENTLY for the three partial indexes (idempotent; an INVALID index left by a
   failed build is dropped and rebuilt), without statement_timeout.

Downgrade drops the constraints (together with reinstalling dual-write version 1) and the
indexes (concurrently). The values step 3 set to NULL are not restored in the columns; the
metadata keys still hold them, and the rejects say why.

Revision ID: 0021_promotion_validate
Revises: 0020_promotion_expand
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file
# Pinned: the declarations and SQL builders as released, not the live modules.
from trackschema.promotions import released_2026_11 as ops
from trackschema.promotions.released_2026_11 import PROMOTIONS

revision: str = "0021_promotion_validate"
down_revision: str | None = "0020_promotion_expand"
branch_labels = None
depends_on = None

MAX_NULL_RATE = 0.01  # seed 004: "Once <1% NULL rate"


def upgrade() -> None:
    promotions = list(PROMOTIONS)
    ops.gate(promotions, max_null_rate=MAX_NULL_RATE, action="validate the promoted columns")
    context = op.get_context()
    with context.autocommit_block():
        pass  # commit the gate (and any inline fill) before taking table locks
    ops.add_type_constraints_not_valid(promotions)
    execute_sql_file("functions/context_events_promote_metadata.v2.sql")
    with context.autocommit_block(), ops.no_statement_timeout():
        ops.null_invalid_column_values(promotions)
        ops.validate_constraints(ops.type_constraints(promotions))
        ops.create_indexes_concurrently(promotions)


def downgrade() -> None:
    promotions = list(PROMOTIONS)
    ops.drop_constraints(ops.type_constraints(promotions))
    execute_sql_file("functions/context_events_promote_metadata.v1.sql")
    with op.get_context().autocommit_block():
        ops.drop_indexes_concurrently(promotions)
