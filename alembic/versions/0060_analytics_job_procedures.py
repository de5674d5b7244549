"""Analytics jobs as procedures: SQL entry points for aggregate-daily and retention.

Installs `trackschema.analytics_aggregate_pending([before])` (the incremental
`aggregate-daily`: every dirty UTC day before today, a transaction per day) and
`trackschema.analytics_retention(days, batch_size)` (the `retention` job's five steps, a
transaction per step and batch), each recording its run in `trackschema.job_runs` under
the job's advisory lock like `trackschema jobs run`. With them the two jobs have SQL
entry points, so `trackschema jobs schedule` registers them with pg_cron (before, they
got crontab lines), and the CLI calls the same procedures, so both ways do the same work.
What they call (aggregate_analytics_daily, analytics_purge_raw_batch, job_run_begin/end)
is unchanged.

Catalog-only: no table is touched. Downgrade drops the two procedures; a pg_cron entry
that still calls one then fails until `trackschema jobs schedule` is run again at the
older version (it puts crontab lines in their place).

Revision ID: 0060_analytics_job_procedures
Revises: 0050_table_size_history
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file

revision: str = "0060_analytics_job_procedures"
down_revision: str | None = "0050_table_size_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_sql_file("functions/analytics_aggregate_pending.v1.sql")
    execute_sql_file("functions/analytics_retention.v1.sql")


def downgrade() -> None:
    op.execute("DROP PROCEDURE trackschema.analytics_retention(integer, integer, boolean, jsonb)")
    op.execute("DROP PROCEDURE trackschema.analytics_aggregate_pending(date, boolean, jsonb)")
