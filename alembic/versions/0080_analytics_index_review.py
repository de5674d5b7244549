"""Analytics: index review of the raw event tables; the streaming ingest's functions.

Index review (`trackschema audit indexes` after a realistic ingest, roll-up, dashboard and
retention run; the evidence is in docs/design.md#ingest). Every index of
analytics_sessions, analytics_page_views and analytics_clicks, and what reads it:

- kept: the primary keys (session upserts, the foreign keys, page view and click ids,
  which now also find duplicates); `idx_page_views_session_id`, `idx_clicks_session_id`
  (the foreign keys' ON DELETE CASCADE and retention's "no rows left" check);
  `idx_*_user_code_*` (the dashboards' raw part and the RLS reader policy by user_code);
  `idx_page_views_viewed_at`, `idx_clicks_clicked_at`, `idx_sessions_first_seen`
  (aggregate_analytics_daily's day ranges and retention's oldest-first purge);
- dropped: `idx_sessions_share_code`. No query of trackschema filters or joins sessions
  by share_code (the dashboards group by it within one user's rows, which
  `idx_sessions_user_code_first_seen` finds), yet every new session wrote it.

Dropped with DROP INDEX CONCURRENTLY (no lock that blocks writers), in an autocommit block;
rerunnable (IF EXISTS). The downgrade builds it again exactly as revision 0001 made it,
CREATE INDEX CONCURRENTLY IF NOT EXISTS, an INVALID leftover of a failed build dropped first
(offline: a DO block drops it, without CONCURRENTLY, which DO cannot run).

Streaming ingest (`trackschema ingest`, see trackschema.analytics.ingest_stream), three
functions (sql/functions/analytics_ingest_{prepare,check,land}.v1.sql):
`analytics_ingest_prepare()` makes the session's temporary tables, `analytics_ingest_check()`
checks the lines a batch COPYed into one of them (analytics_ingest's checks, set-based) and
records the refusals, `analytics_ingest_land()` lands the checked events, one statement per
table. All SECURITY DEFINER, EXECUTE revoked from PUBLIC and granted to the analytics ingest
role (trackschema.analytics_roles, revision 0013). analytics_ingest(jsonb) is unchanged.

Downgrade drops the three functions (nothing is stored by them) and rebuilds the index.

Revision ID: 0080_analytics_index_review
Revises: 0070_analytics_ingest_iso_times
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import context, op
from sqlalchemy import text

from trackschema.migration_ops import execute_sql_file

revision: str = "0080_analytics_index_review"
down_revision: str | None = "0070_analytics_ingest_iso_times"
branch_labels = None
depends_on = None

# name -> (table, columns) as revision 0001 created them; names are constants of this revision
DROPPED = {
    "idx_sessions_share_code": ("analytics_sessions", "(share_code)"),
}

FUNCTIONS = ["analytics_ingest_prepare()", "analytics_ingest_check()", "analytics_ingest_land()"]

GRANTS = """
DO $grants$
DECLARE
    v_ingest name := (SELECT role_name FROM trackschema.analytics_roles WHERE purpose = 'ingest');
BEGIN
    IF v_ingest IS NOT NULL AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_ingest) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION analytics_ingest_prepare() TO %I', v_ingest);
        EXECUTE format('GRANT EXECUTE ON FUNCTION analytics_ingest_check() TO %I', v_ingest);
        EXECUTE format('GRANT EXECUTE ON FUNCTION analytics_ingest_land() TO %I', v_ingest);
    END IF;
END
$grants$;
"""


def _drop_invalid(name: str) -> None:
    """Drop index `name` when a failed concurrent build left it INVALID (call in an
    autocommit block). Offline the catalog cannot be read: the script carries a DO block."""
    if context.is_offline_mode():
        op.execute(
            f"""
DO $drop_invalid$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('{name}') AND NOT indisvalid) THEN
        EXECUTE 'DROP INDEX {name}';
    END IF;
END
$drop_invalid$"""
        )
        return
    invalid = op.get_bind().execute(
        text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": name}
    ).scalar()
    if invalid:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def upgrade() -> None:
    execute_sql_file("functions/analytics_ingest_prepare.v1.sql")
    execute_sql_file("functions/analytics_ingest_check.v1.sql")
    execute_sql_file("functions/analytics_ingest_land.v1.sql")
    for signature in FUNCTIONS:
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
    op.execute(GRANTS)
    with op.get_context().autocommit_block():
        for name in DROPPED:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def downgrade() -> None:
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
    with op.get_context().autocommit_block():
        for name, (table, columns) in DROPPED.items():
            _drop_invalid(name)
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} {columns}")
