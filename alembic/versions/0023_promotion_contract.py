"""Promotion contract: the dual-write path goes (reversibly); the columns are the written side.

Seed 004, "Migration & Rollback Plan", clean-up. Drops the dual-write trigger and function
and the in-step constraints (with no trigger to keep the metadata keys current, a writer
that sets only a column would violate them). The metadata keys stay as they are: nothing
is deleted, and rows written before this revision keep both sides.

Downgrade is the rollback path: it reinstalls the dual-write function (version 2, as
validate left it) and trigger and the in-step constraints (NOT VALID, so new writes are
checked at once), then brings rows written while the trigger was absent back in step, in
committed batches of 2 000 pages (a non-NULL column rewrites its key; an empty column is
filled from its key or gets a reject), then validates the constraints.

Revision ID: 0023_promotion_contract
Revises: 0022_promotion_switch
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

# Pinned: the declarations and SQL builders as released, not the live modules.
from trackschema.promotions import released_2026_11 as ops
from trackschema.promotions.released_2026_11 import PROMOTIONS

revision: str = "0023_promotion_contract"
down_revision: str | None = "0022_promotion_switch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    promotions = list(PROMOTIONS)
    ops.drop_constraints(ops.in_step_constraints(promotions))
    ops.drop_dual_write()


def downgrade() -> None:
    promotions = list(PROMOTIONS)
    ops.install_dual_write("functions/context_events_promote_metadata.v2.sql", "triggers/context_events_promote_metadata.v1.sql")
    ops.add_in_step_constraints_not_valid(promotions)
    with op.get_context().autocommit_block(), ops.no_statement_timeout():
        ops.resync(promotions)
        ops.validate_constraints(ops.in_step_constraints(promotions))
