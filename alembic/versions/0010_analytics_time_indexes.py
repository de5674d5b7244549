"""Analytics: time indexes on the raw tables, built CONCURRENTLY.

The daily roll-up reads one UTC day of every raw table and retention deletes the oldest
rows first; both need an index on the event time alone (the seed's indexes all lead
with user_code). The raw tables may already be large and busy, so the indexes are
built with CREATE INDEX CONCURRENTLY outside a transaction. This revision holds nothing
else, so running it again after a failure is safe: an index that exists and is valid is
kept, an INVALID one left by a failed build is dropped and rebuilt.

In offline (`--sql`) mode the catalog cannot be read; the emitted SQL uses
`IF NOT EXISTS` only (drop an INVALID leftover by hand before applying it).

Downgrade drops the three indexes (concurrently). No data is involved.

Revision ID: 0010_analytics_time_indexes
Revises: 0004_event_queue
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import context, op
from sqlalchemy import text

revision: str = "0010_analytics_time_indexes"
down_revision: str | None = "0004_event_queue"
branch_labels = None
depends_on = None

# name -> (table, column list); names and tables are constants of this revision.
INDEXES = {
    "idx_page_views_viewed_at": ("analytics_page_views", "(viewed_at)"),
    "idx_clicks_clicked_at": ("analytics_clicks", "(clicked_at)"),
    "idx_sessions_first_seen": ("analytics_sessions", "(first_seen)"),
}


def _invalid(name: str) -> bool:
    """True when index `name` exists but is INVALID (a failed concurrent build)."""
    if context.is_offline_mode():
        return False
    row = op.get_bind().execute(
        text(
            """SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"""
        ),
        {"name": name},
    ).first()
    return bool(row and row[0])


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, columns) in INDEXES.items():
            if _invalid(name):
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} {columns}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
