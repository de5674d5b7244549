"""Citus: the analytics tables distributed by user_code (docs/citus.md#analytics).

Revision 0100 left the analytics tables local; on a Citus coordinator this revision places
them as `trackschema.citus.layout_0101.LAYOUT_0101` declares: `analytics_user_code_owners` a
reference table; `analytics_sessions`, `analytics_page_views`, `analytics_clicks` and the
four daily roll-ups distributed by `user_code`, co-located (primary keys and the sessions'
foreign keys gain `user_code`). The reader policies are rewritten without subqueries (Citus
refuses them): `analytics_may_read(user_code)` / `analytics_role_usable(role_name)`, functions
on every node, same roles, same rule. The statement triggers of the raw tables are dropped:
the Citus versions of the ingest functions mark the dirty days and raise the session
counters themselves. `trackschema.citus.analytics` has the details.

SQL files it installs on Citus (the downgrade puts back the versions of 0100's time:
functions/analytics_ingest_land.v1.sql, functions/analytics_ingest.v2.sql,
functions/analytics_purge_raw_batch.v1.sql, functions/analytics_dashboard_*.v1.sql):
functions/analytics_role_usable.v1.sql, functions/analytics_may_read.v1.sql (the policies),
functions/analytics_ingest_land.v2.sql, functions/analytics_ingest.v3.sql,
functions/analytics_purge_raw_batch.v2.sql, functions/analytics_dashboard_daily.v2.sql,
functions/analytics_dashboard_pages.v2.sql, functions/analytics_dashboard_clicks.v2.sql,
functions/analytics_dashboard_shares.v2.sql.

A raw row without a user_code stops the upgrade with one line naming it (a NULL cannot be a
distribution value). On plain PostgreSQL upgrade and downgrade are one NOTICE each.

Downgrade: `undistribute_table` for every entry, keys, foreign keys, triggers, the policies
of 0013 and the ingest functions of 0100's time back; rows kept.

Locks: ACCESS EXCLUSIVE on the analytics tables for the whole transaction (the rows are
copied into the shards): run it in a quiet window.

Revision ID: 0101_citus_analytics
Revises: 0100_citus_distribution
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op
from trackschema.citus import analytics

revision: str = "0101_citus_analytics"
down_revision: str | None = "0100_citus_distribution"
branch_labels = None
depends_on = None


# The reader policies' functions (file, signature), on every node (create_distributed_function).
POLICY_FUNCTIONS = (("functions/analytics_role_usable.v1.sql", "analytics_role_usable(name)"),
                    ("functions/analytics_may_read.v1.sql", "analytics_may_read(text)"))
# Installed on Citus by the upgrade; the downgrade puts back PLAIN_FUNCTIONS, their versions at 0100.
CITUS_FUNCTIONS = ("functions/analytics_ingest_land.v2.sql", "functions/analytics_ingest.v3.sql",
                   "functions/analytics_purge_raw_batch.v2.sql", "functions/analytics_dashboard_daily.v2.sql",
                   "functions/analytics_dashboard_pages.v2.sql", "functions/analytics_dashboard_clicks.v2.sql",
                   "functions/analytics_dashboard_shares.v2.sql")
PLAIN_FUNCTIONS = ("functions/analytics_ingest_land.v1.sql", "functions/analytics_ingest.v2.sql",
                   "functions/analytics_purge_raw_batch.v1.sql", "functions/analytics_dashboard_daily.v1.sql",
                   "functions/analytics_dashboard_pages.v1.sql", "functions/analytics_dashboard_clicks.v1.sql",
                   "functions/analytics_dashboard_shares.v1.sql")


def upgrade() -> None:
    op.execute(analytics.upgrade_sql(revision, policy_functions=POLICY_FUNCTIONS, citus_functions=CITUS_FUNCTIONS))


def downgrade() -> None:
    op.execute(analytics.downgrade_sql(revision, policy_functions=POLICY_FUNCTIONS, plain_functions=PLAIN_FUNCTIONS))
