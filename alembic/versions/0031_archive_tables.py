"""Archive tables for the tracking tables that are archived row by row.

`activity_log_archive`, `entity_events_archive` and `goal_events_archive` take the rows
the `archive-tracking` job moves out of their tables (see `trackschema.archiving`: one
DELETE ... RETURNING feeding an INSERT per batch, so no row is lost or duplicated). Each
has the columns of its table as they are when this revision runs (LIKE: names, types,
NOT NULL, comments; no defaults, no triggers), a primary key on (id, occurred_at), which
holds whether or not the source table is partitioned, and an index on occurred_at for
reading an archive by time. A column added to a tracking table later must be added to
its archive too; the job says so, with the statement, instead of dropping the column.

`activity_log_archive` exists even when `activity_log` is partitioned (then its old
months are retired as whole partitions and the job skips the table).

Downgrade drops the archive tables; it refuses while any holds a row (the archived
history cannot come back from nowhere) unless run with `--allow-data-loss`.

Revision ID: 0031_archive_tables
Revises: 0030_partition_tracking_tables
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import refuse_data_loss

revision: str = "0031_archive_tables"
down_revision: str | None = "0030_partition_tracking_tables"
branch_labels = None
depends_on = None

# table -> the column that dates a row (fixed here: a released revision never changes meaning)
ARCHIVED = {"activity_log": "occurred_at", "entity_events": "occurred_at", "goal_events": "occurred_at"}


def upgrade() -> None:
    for table, key in ARCHIVED.items():
        op.execute(f"CREATE TABLE {table}_archive (LIKE {table} INCLUDING COMMENTS)")
        op.execute(f"ALTER TABLE {table}_archive ADD CONSTRAINT {table}_archive_pkey PRIMARY KEY (id, {key})")
        op.execute(f"CREATE INDEX idx_{table}_archive_{key} ON {table}_archive ({key})")
        op.execute(f"COMMENT ON TABLE {table}_archive IS 'rows of {table} older than the retention, moved by the archive-tracking job'")


def downgrade() -> None:
    refuse_data_loss([f"{table}_archive" for table in ARCHIVED], "drop the tracking archive tables")
    for table in reversed(list(ARCHIVED)):
        op.execute(f"DROP TABLE {table}_archive")
