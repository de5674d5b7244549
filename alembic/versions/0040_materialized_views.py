"""Materialized views for dashboards, their refresh bookkeeping and SQL job entry points.

Views (seed 004 §5 Job 1, seed 001 "Rule 2: Denormalize Strategically", seed 003):

- `dashboard_statistics`: one row per project (from `roadmap_items`) and one per calendar
  user (from `calendar_projections`). The seed's UNION does not run: its branches have 7
  and 6 columns, put a uuid and a text id in one column, and reuse columns for numbers of
  different meaning (active items vs pending projections). Here every measure has its
  own column (NULL where it does not apply), `entity_id` is uuid in both branches, and
  `next_deadline` is the earliest `end_date` from today (UTC) of an open (active or blocked)
  item; the seed's `MIN(start_date)` is the oldest start, in the past for any running
  project. `last_updated` is `max(updated_at)`: a status change updates it, not `created_at`.
- `contact_management_view`: one row per contact and linked address (a contact without
  one gets one row with NULL address columns). Touchpoints are counted per contact before
  the join (no fan-out, no COUNT(DISTINCT)); `last_touchpoint_date` is the latest
  `occurred_at`, when the touchpoint happened. The seed's entity-type filter on the
  display name 'Contact' is dropped: `contacts.id` references the entity, so a contacts row
  is the contact.
- `analytics_dashboard`: per `user_code` and UTC day, from the raw analytics tables:
  sessions started, page views, clicks, distinct share codes. Rows without a user_code
  belong to no dashboard and are left out.

Each view has the unique index `REFRESH MATERIALIZED VIEW CONCURRENTLY` needs, on columns
that are never NULL: the refresh matches old and new rows with `=`, under which a NULL
key never matches, so every such row would be deleted and re-inserted on every refresh.
That is why `contact_management_view` carries `address_key` (the address id, or the nil
UUID for "no address"). The search indexes of seed 001 are created too.

`trackschema.matview_refreshes` registers the views to refresh and records each refresh
(when, how long, how, the last error). `trackschema.refresh_matviews()` refreshes them;
`trackschema.job_run_begin/end()` and `trackschema.run_job_sql()` let a scheduler without
Python (pg_cron) run jobs with the same run history and advisory lock as
`trackschema jobs run`.

The views are created WITH DATA (their creation counts as the first refresh); creating
them reads the base tables under ACCESS SHARE, which blocks no writer.

Downgrade drops all of it: the views hold only derived data, the refresh history is lost.
On a server with pg_cron, run `trackschema jobs schedule --remove` first: the pg_cron entry
calls `trackschema.refresh_matviews()`, which the downgrade drops.

Revision ID: 0040_materialized_views
Revises: 0031_archive_tables
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file

revision: str = "0040_materialized_views"
down_revision: str | None = "0031_archive_tables"
branch_labels = None
depends_on = None

VIEWS = ("analytics_dashboard", "contact_management_view", "dashboard_statistics")

REFRESH_TABLE = """
-- One row per materialized view that `refresh-matviews` keeps fresh.
CREATE TABLE trackschema.matview_refreshes (
    schema_name     text NOT NULL,
    view_name       text NOT NULL,
    refresh_order   integer NOT NULL DEFAULT 100,
    refreshed_at    timestamptz,
    refresh_seconds double precision,
    refresh_mode    text CONSTRAINT matview_refreshes_mode_check CHECK (refresh_mode IN ('create', 'full', 'concurrently')),
    last_error      text,
    last_error_at   timestamptz,
    PRIMARY KEY (schema_name, view_name)
);
COMMENT ON TABLE trackschema.matview_refreshes IS
    'materialized views refreshed by the refresh-matviews job, and when each was last refreshed';
"""

DASHBOARD_STATISTICS = """
CREATE MATERIALIZED VIEW dashboard_statistics AS
SELECT 'project'::text AS entity_type,
       r.master_project_id AS entity_id,
       count(*) AS total_items,
       count(*) FILTER (WHERE r.status = 'active') AS active_items,
       count(*) FILTER (WHERE r.status = 'completed') AS completed_items,
       count(*) FILTER (WHERE r.status = 'blocked') AS blocked_items,
       min(r.end_date) FILTER (WHERE r.status IN ('active', 'blocked')
                                 AND r.end_date >= (now() AT TIME ZONE 'UTC')::date) AS next_deadline,
       NULL::bigint AS pending_projections,
       NULL::bigint AS accepted_projections,
       NULL::bigint AS declined_projections,
       max(r.updated_at) AS last_updated
  FROM roadmap_items r
 GROUP BY r.master_project_id
UNION ALL
SELECT 'calendar_user'::text,
       p.target_user_id,
       NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::date,
       count(*) FILTER (WHERE p.status = 'pending'),
       count(*) FILTER (WHERE p.status = 'accepted'),
       count(*) FILTER (WHERE p.status = 'declined'),
       max(p.updated_at)
  FROM calendar_projections p
 GROUP BY p.target_user_id
WITH DATA;
COMMENT ON MATERIALIZED VIEW dashboard_statistics IS
    'dashboard counts per project (roadmap_items) and per calendar user (calendar_projections); refreshed by refresh-matviews';
CREATE UNIQUE INDEX dashboard_statistics_key ON dashboard_statistics (entity_type, entity_id);
"""

CONTACT_MANAGEMENT_VIEW = """
CREATE MATERIALIZED VIEW contact_management_view AS
SELECT e.id AS entity_id,
       e.status AS entity_status,
       c.id AS contact_id,
       c.first_name,
       c.last_name,
       c.email,
       a.id AS address_id,
       a.street,
       a.city,
       a.state,
       a.postal_code,
       coalesce(a.id, '00000000-0000-0000-0000-000000000000'::uuid) AS address_key,
       coalesce(t.touchpoint_count, 0) AS touchpoint_count,
       t.last_touchpoint_date
  FROM contacts c
  JOIN entities e ON e.id = c.id
  LEFT JOIN address_contacts ac ON ac.contact_id = c.id
  LEFT JOIN addresses a ON a.id = ac.address_id
  LEFT JOIN (SELECT entity_id, count(*) AS touchpoint_count, max(occurred_at) AS last_touchpoint_date
               FROM entity_touchpoints
              GROUP BY entity_id) t ON t.entity_id = c.id
WITH DATA;
COMMENT ON MATERIALIZED VIEW contact_management_view IS
    'contacts with their addresses and touchpoint counts (address_key: address id, nil UUID for none); refreshed by refresh-matviews';
CREATE UNIQUE INDEX contact_management_view_key ON contact_management_view (contact_id, address_key);
CREATE INDEX idx_contact_management_view_name ON contact_management_view (first_name, last_name);
CREATE INDEX idx_contact_management_view_email ON contact_management_view (email);
"""

ANALYTICS_DASHBOARD = """
CREATE MATERIALIZED VIEW analytics_dashboard AS
WITH sessions AS (
    SELECT user_code, (first_seen AT TIME ZONE 'UTC')::date AS day,
           count(*) AS sessions, count(DISTINCT share_code) AS share_codes, max(last_seen) AS last_at
      FROM analytics_sessions
     WHERE user_code IS NOT NULL
     GROUP BY 1, 2
), views AS (
    SELECT user_code, (viewed_at AT TIME ZONE 'UTC')::date AS day, count(*) AS page_views, max(viewed_at) AS last_at
      FROM analytics_page_views
     WHERE user_code IS NOT NULL
     GROUP BY 1, 2
), clicks AS (
    SELECT user_code, (clicked_at AT TIME ZONE 'UTC')::date AS day, count(*) AS clicks, max(clicked_at) AS last_at
      FROM analytics_clicks
     WHERE user_code IS NOT NULL
     GROUP BY 1, 2
)
SELECT user_code,
       day,
       coalesce(s.sessions, 0) AS sessions,
       coalesce(v.page_views, 0) AS page_views,
       coalesce(c.clicks, 0) AS clicks,
       coalesce(s.share_codes, 0) AS share_codes,
       greatest(s.last_at, v.last_at, c.last_at) AS last_event_at
  FROM sessions s
  FULL JOIN views v USING (user_code, day)
  FULL JOIN clicks c USING (user_code, day)
WITH DATA;
COMMENT ON MATERIALIZED VIEW analytics_dashboard IS
    'per user_code and UTC day: sessions started, page views, clicks (raw analytics tables); refreshed by refresh-matviews';
CREATE UNIQUE INDEX analytics_dashboard_key ON analytics_dashboard (user_code, day);
"""

REGISTER = """
INSERT INTO trackschema.matview_refreshes (schema_name, view_name, refresh_order, refreshed_at, refresh_mode)
SELECT current_schema(), v.name, v.refresh_order, now(), 'create'
  FROM (VALUES ('analytics_dashboard', 10), ('contact_management_view', 20), ('dashboard_statistics', 30)) AS v (name, refresh_order);
"""


def upgrade() -> None:
    op.execute(REFRESH_TABLE)
    execute_sql_file("functions/job_run_begin.v1.sql")
    execute_sql_file("functions/job_run_end.v1.sql")
    execute_sql_file("functions/run_job_sql.v1.sql")
    execute_sql_file("functions/refresh_matviews.v1.sql")
    op.execute(DASHBOARD_STATISTICS)
    op.execute(CONTACT_MANAGEMENT_VIEW)
    op.execute(ANALYTICS_DASHBOARD)
    op.execute(REGISTER)


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW " + ", ".join(VIEWS))
    op.execute("DROP PROCEDURE trackschema.refresh_matviews(interval, boolean, jsonb)")
    op.execute("DROP PROCEDURE trackschema.run_job_sql(text, text, jsonb)")
    op.execute("DROP FUNCTION trackschema.job_run_end(bigint, text, jsonb, text)")
    op.execute("DROP FUNCTION trackschema.job_run_begin(text, jsonb)")
    op.execute("DROP TABLE trackschema.matview_refreshes")
