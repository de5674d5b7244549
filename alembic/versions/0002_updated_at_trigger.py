"""One update_updated_at_column() trigger on every table with updated_at.

Installs `sql/functions/update_updated_at_column.v1.sql` (bumps `updated_at` on a real
change, skips no-op updates, leaves maintenance writes made under
`SET LOCAL trackschema.maintenance = 'on'` alone) and attaches it as the BEFORE UPDATE
row trigger `update_updated_at` to each table that has an `updated_at` column at this
point of the chain. The tables are listed explicitly so the offline `--sql` output does
not depend on the database; `trackschema audit triggers` reports any table with
`updated_at` that ends up without the trigger (for instance one created later).

Creating a trigger takes a SHARE ROW EXCLUSIVE lock on the table for a moment; the
session's lock_timeout bounds the wait and env.py retries.

Downgrade drops the triggers and the function; no data is involved.

Revision ID: 0002_updated_at_trigger
Revises: 0001_core_schema
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file

revision: str = "0002_updated_at_trigger"
down_revision: str | None = "0001_core_schema"
branch_labels = None
depends_on = None

TRIGGER = "update_updated_at"

# Every table with an updated_at column after 0001_core_schema.
TABLES = [
    "entity_types",
    "entities",
    "contacts",
    "addresses",
    "roadmap_items",
    "context_events",
    "calendar_events",
    "calendar_projections",
]


def upgrade() -> None:
    execute_sql_file("functions/update_updated_at_column.v1.sql")
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()"
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TRIGGER {TRIGGER} ON {table}")
    op.execute("DROP FUNCTION update_updated_at_column()")
