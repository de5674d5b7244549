"""Promotion switch: in-step CHECKs prove column and key agree on every row; reads may use the columns.

Seed 004, "Migration & Rollback Plan", stage 1 step 5 (switch reads to columns). Readers
may use the columns instead of the metadata keys once every row is promoted and every
future write keeps them equal. This revision makes both facts hold in the database:

1. Gate: refuses while any row with a key still has an empty column and no reject (NULL
   rate above 0), saying which backfill to run; at most 10 000 such rows (trackschema.inline_fill_limit) are filled here.
2. One in-step CHECK per promotion, NOT VALID (brief lock): the column equals the promoted
   key (for the roadmap reference: a non-NULL column equals the key; whether a key's row
   exists is not a fact a CHECK may depend on). The dual-write trigger runs before the
   check, so application writes cannot violate it.
3. VALIDATE CONSTRAINT without blocking writes: every existing row agrees.

`trackschema status` shows a promotion as switched once its in-step constraint is valid.
Downgrade drops the in-step constraints; nothing else changes.

Revision ID: 0022_promotion_switch
Revises: 0021_promotion_validate
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

# Pinned: the declarations and SQL builders as released, not the live modules.
from trackschema.promotions import released_2026_11 as ops
from trackschema.promotions.released_2026_11 import PROMOTIONS

revision: str = "0022_promotion_switch"
down_revision: str | None = "0021_promotion_validate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    promotions = list(PROMOTIONS)
    ops.gate(promotions, max_null_rate=0.0, action="switch reads to the promoted columns")
    context = op.get_context()
    with context.autocommit_block():
        pass  # commit the gate before taking table locks
    ops.add_in_step_constraints_not_valid(promotions)
    with context.autocommit_block(), ops.no_statement_timeout():
        ops.validate_constraints(ops.in_step_constraints(promotions))


def downgrade() -> None:
    ops.drop_constraints(ops.in_step_constraints(list(PROMOTIONS)))
