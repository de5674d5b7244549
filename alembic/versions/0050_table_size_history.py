"""Table size history: daily snapshots so `status` can show growth.

Creates `trackschema.table_size_snapshots`, filled by the `table-sizes` job (daily); the
status page compares the newest snapshot with one about a day older. Bookkeeping only:
the downgrade drops the history (it can be rebuilt only going forward).

Revision ID: 0050_table_size_history
Revises: 0040_materialized_views
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision: str = "0050_table_size_history"
down_revision: str | None = "0040_materialized_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE trackschema.table_size_snapshots (
    taken_at      timestamptz NOT NULL,
    table_name    text NOT NULL,
    total_bytes   bigint NOT NULL,
    rows_estimate bigint NOT NULL,
    PRIMARY KEY (table_name, taken_at)
);
COMMENT ON TABLE trackschema.table_size_snapshots IS 'daily sizes written by the table-sizes job; status shows growth from them';
"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE trackschema.table_size_snapshots")
