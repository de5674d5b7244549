"""Analytics: daily roll-up tables, incremental aggregation, real-time dashboards, retention.

Adds (seed 003, "Pre-aggregated tables"):
- `analytics_daily_user_stats`, `analytics_daily_group_stats`, `analytics_daily_click_targets`,
  `analytics_daily_page_stats` with the seed's unique keys. The seed's
  `idx_daily_user_stats_user_date` and `idx_daily_group_stats_user_share_date` have the
  same columns as the unique keys, so the unique constraints carry those names instead of
  duplicating the index; `idx_daily_click_targets_user_date` and
  `idx_daily_page_stats_user_date` serve per-user date ranges. share_code may be NULL
  (traffic without a share link): the unique keys are NULLS NOT DISTINCT (PostgreSQL 15+).
- Bookkeeping in schema `trackschema`: `analytics_dirty_days` (days whose roll-ups are
  stale, filled by statement-level triggers on the raw tables), `analytics_rollup_days`
  (when each day was aggregated), `analytics_raw_horizon` (retention state).
- Functions: `aggregate_analytics_daily(day)`, the dashboard functions
  (`analytics_dashboard_daily/pages/clicks/shares`, `analytics_daily_stats_raw`,
  `analytics_rollup_coverage`) and `analytics_purge_raw_batch(before, batch_size)`.

Days are UTC days throughout.

Downgrade drops all of it. The roll-ups are derived data, but after retention has purged
raw rows they are the only record of those days: the downgrade refuses while the roll-up
tables hold rows unless run with `--allow-data-loss`.

Revision ID: 0011_analytics_rollups
Revises: 0010_analytics_time_indexes
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file, refuse_data_loss

revision: str = "0011_analytics_rollups"
down_revision: str | None = "0010_analytics_time_indexes"
branch_labels = None
depends_on = None

ROLLUP_TABLES = [
    "analytics_daily_user_stats",
    "analytics_daily_group_stats",
    "analytics_daily_click_targets",
    "analytics_daily_page_stats",
]

FUNCTION_FILES = [
    "functions/analytics_mark_days.v1.sql",
    "triggers/analytics_page_views_mark_days.v1.sql",
    "triggers/analytics_clicks_mark_days.v1.sql",
    "triggers/analytics_sessions_mark_days.v1.sql",
    "functions/aggregate_analytics_daily.v1.sql",
    "functions/analytics_rollup_coverage.v1.sql",
    "functions/analytics_daily_stats_raw.v1.sql",
    "functions/analytics_dashboard_daily.v1.sql",
    "functions/analytics_dashboard_pages.v1.sql",
    "functions/analytics_dashboard_clicks.v1.sql",
    "functions/analytics_dashboard_shares.v1.sql",
    "functions/analytics_purge_raw_batch.v1.sql",
]

TABLES = """
CREATE TABLE analytics_daily_user_stats (
    id                 uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    user_code          text NOT NULL,
    date               date NOT NULL,
    total_sessions     integer NOT NULL DEFAULT 0,
    total_page_views   integer NOT NULL DEFAULT 0,
    total_clicks       integer NOT NULL DEFAULT 0,
    unique_share_codes text[] NOT NULL DEFAULT '{}',
    aggregated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idx_daily_user_stats_user_date UNIQUE (user_code, date)
);

CREATE TABLE analytics_daily_group_stats (
    id               uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    user_code        text NOT NULL,
    share_code       text,
    date             date NOT NULL,
    total_sessions   integer NOT NULL DEFAULT 0,
    total_page_views integer NOT NULL DEFAULT 0,
    total_clicks     integer NOT NULL DEFAULT 0,
    aggregated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idx_daily_group_stats_user_share_date UNIQUE NULLS NOT DISTINCT (user_code, share_code, date)
);

CREATE TABLE analytics_daily_click_targets (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    user_code      text NOT NULL,
    share_code     text,
    date           date NOT NULL,
    click_target   text NOT NULL,
    click_category text,
    click_count    integer NOT NULL DEFAULT 0,
    aggregated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analytics_daily_click_targets_key UNIQUE NULLS NOT DISTINCT (user_code, share_code, date, click_target)
);
CREATE INDEX idx_daily_click_targets_user_date ON analytics_daily_click_targets (user_code, date DESC);

CREATE TABLE analytics_daily_page_stats (
    id            uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    user_code     text NOT NULL,
    share_code    text,
    date          date NOT NULL,
    page_type     text NOT NULL,
    view_count    integer NOT NULL DEFAULT 0,
    aggregated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analytics_daily_page_stats_key UNIQUE NULLS NOT DISTINCT (user_code, share_code, date, page_type)
);
CREATE INDEX idx_daily_page_stats_user_date ON analytics_daily_page_stats (user_code, date DESC);

-- Days whose roll-ups are stale. Several markers per day may exist (see analytics_mark_days).
CREATE TABLE trackschema.analytics_dirty_days (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    day       date NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX analytics_dirty_days_day ON trackschema.analytics_dirty_days (day);

-- The last aggregation of each day and the raw counts it saw.
CREATE TABLE trackschema.analytics_rollup_days (
    day           date PRIMARY KEY,
    aggregated_at timestamptz NOT NULL,
    sessions      bigint NOT NULL,
    page_views    bigint NOT NULL,
    clicks        bigint NOT NULL
);

-- Retention state (one row): ingest rejects events older than accept_from; raw rows older
-- than purged_before may be gone, and the aggregated days before it are final.
CREATE TABLE trackschema.analytics_raw_horizon (
    singleton     boolean PRIMARY KEY DEFAULT true CONSTRAINT analytics_raw_horizon_one_row CHECK (singleton),
    accept_from   timestamptz,
    purged_before timestamptz,
    changed_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO trackschema.analytics_raw_horizon DEFAULT VALUES;
"""

TRIGGERS = """
CREATE TRIGGER analytics_page_views_mark_days_ins AFTER INSERT ON analytics_page_views
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_page_views_mark_days();
CREATE TRIGGER analytics_page_views_mark_days_upd AFTER UPDATE ON analytics_page_views
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_page_views_mark_days();
CREATE TRIGGER analytics_clicks_mark_days_ins AFTER INSERT ON analytics_clicks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_clicks_mark_days();
CREATE TRIGGER analytics_clicks_mark_days_upd AFTER UPDATE ON analytics_clicks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_clicks_mark_days();
CREATE TRIGGER analytics_sessions_mark_days_ins AFTER INSERT ON analytics_sessions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_sessions_mark_days();
CREATE TRIGGER analytics_sessions_mark_days_upd AFTER UPDATE ON analytics_sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_sessions_mark_days();
"""

# Existing raw rows have never been aggregated: mark their days (a no-op on empty tables).
MARK_EXISTING = """
SELECT trackschema.analytics_mark_days(ARRAY(
    SELECT (first_seen AT TIME ZONE 'UTC')::date FROM analytics_sessions
    UNION SELECT (viewed_at AT TIME ZONE 'UTC')::date FROM analytics_page_views
    UNION SELECT (clicked_at AT TIME ZONE 'UTC')::date FROM analytics_clicks));
"""

DROP_FUNCTIONS = """
DROP FUNCTION analytics_purge_raw_batch(timestamptz, integer);
DROP FUNCTION analytics_dashboard_shares(text, date, date);
DROP FUNCTION analytics_dashboard_clicks(text, date, date);
DROP FUNCTION analytics_dashboard_pages(text, date, date);
DROP FUNCTION analytics_dashboard_daily(text, date, date);
DROP FUNCTION analytics_daily_stats_raw(text, date, date);
DROP FUNCTION analytics_rollup_coverage(date, date);
DROP FUNCTION aggregate_analytics_daily(date);
DROP FUNCTION trackschema.analytics_sessions_mark_days();
DROP FUNCTION trackschema.analytics_clicks_mark_days();
DROP FUNCTION trackschema.analytics_page_views_mark_days();
DROP FUNCTION trackschema.analytics_mark_days(date[]);
"""


def upgrade() -> None:
    op.execute(TABLES)
    for path in FUNCTION_FILES:
        execute_sql_file(path)
    op.execute(TRIGGERS)
    op.execute(MARK_EXISTING)


def downgrade() -> None:
    refuse_data_loss(ROLLUP_TABLES, "drop the analytics roll-ups")
    for table, prefix in (("analytics_sessions", "analytics_sessions"), ("analytics_clicks", "analytics_clicks"),
                          ("analytics_page_views", "analytics_page_views")):
        op.execute(f"DROP TRIGGER {prefix}_mark_days_upd ON {table}")
        op.execute(f"DROP TRIGGER {prefix}_mark_days_ins ON {table}")
    op.execute(DROP_FUNCTIONS)
    op.execute("DROP TABLE trackschema.analytics_raw_horizon, trackschema.analytics_rollup_days, trackschema.analytics_dirty_days")
    op.execute("DROP TABLE " + ", ".join(reversed(ROLLUP_TABLES)))
