"""Core schema: entities, tracking tables, analytics raw tables, planner tables.

Creates the application tables of SPEC.md step 1 with time-ordered UUID keys
(`uuid_generate_v7()`), `timestamptz` everywhere and the composite indexes the seed
documents name, plus the `trackschema` schema that holds the toolkit's own bookkeeping.

Tracking tables (`activity_log`, `entity_events`) deliberately carry no foreign keys to
`entities`: history must outlive the rows it describes. They are written on every change
of an entity and read seldom (seed 000: "consider disabling some indexes on these
tables, only adding them when needed for reports"), so each question has one index, not
two: an entity's history is read from `entity_events (entity_id, occurred_at)` and a
user's activity from `activity_log (user_id, occurred_at)`. Every tracked change writes
both an event and an activity row that refers to it (0003), so an entity index on
`activity_log` or a performer index on `entity_events` would index the same changes a
second time; measured on a 100k-row tracked UPDATE they cost 0.4x and 0.2x of the
untracked UPDATE. Add one when a report needs it.

Downgrade drops everything this revision created. It refuses while any of these tables
holds a row, unless run with `--allow-data-loss`: the data cannot come back.

Revision ID: 0001_core_schema
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file, refuse_data_loss

revision: str = "0001_core_schema"
down_revision: str | None = None
branch_labels = None
depends_on = None

TABLES = [
    # planner
    "calendar_projections",
    "calendar_events",
    "context_events",
    "roadmap_items",
    # analytics
    "analytics_events",
    "analytics_clicks",
    "analytics_page_views",
    "analytics_sessions",
    # tracking
    "goal_events",
    "entity_achievements",
    "entity_events",
    "activity_log",
    # entities
    "entity_relationships",
    "entity_touchpoints",
    "address_contacts",
    "addresses",
    "contacts",
    "entities",
    "entity_types",
]

UPGRADE = """
CREATE SCHEMA IF NOT EXISTS trackschema;
COMMENT ON SCHEMA trackschema IS 'trackschema toolkit bookkeeping (checkpoints, rejects, job runs); no application data';

-- One row per job run (trackschema jobs run NAME): start, end, outcome, error.
CREATE TABLE trackschema.job_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    status      text NOT NULL DEFAULT 'running'
        CONSTRAINT job_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed')),
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    result      jsonb,
    error       text,
    backend_pid integer NOT NULL DEFAULT pg_backend_pid()
);
CREATE INDEX job_runs_job_started ON trackschema.job_runs (job, started_at DESC);

-- entities ----------------------------------------------------------------------------
CREATE TABLE entity_types (
    id           uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    name         text NOT NULL UNIQUE,
    display_name text NOT NULL UNIQUE,
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE entities (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    entity_type_id uuid NOT NULL REFERENCES entity_types (id),
    status         text NOT NULL DEFAULT 'ACTIVE',
    data           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by     uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_entities_type_status ON entities (entity_type_id, status);

CREATE TABLE contacts (
    id         uuid PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
    first_name text,
    last_name  text,
    email      text,
    phone      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_contacts_name ON contacts (last_name, first_name);
CREATE INDEX idx_contacts_email ON contacts (lower(email));

CREATE TABLE addresses (
    id          uuid PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
    street      text,
    city        text,
    state       text,
    postal_code text,
    country     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE address_contacts (
    address_id uuid NOT NULL REFERENCES addresses (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    is_primary boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (address_id, contact_id)
);
CREATE INDEX idx_address_contacts_contact ON address_contacts (contact_id);

CREATE TABLE entity_touchpoints (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    entity_id      uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    touchpoint_type text NOT NULL,
    channel        text,
    notes          text,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_entity_touchpoints_entity_time ON entity_touchpoints (entity_id, occurred_at DESC);

CREATE TABLE entity_relationships (
    id                uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    from_entity_id    uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    to_entity_id      uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    relationship_type text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT entity_relationships_unique UNIQUE (from_entity_id, to_entity_id, relationship_type),
    CONSTRAINT entity_relationships_not_self CHECK (from_entity_id <> to_entity_id)
);
CREATE INDEX idx_entity_relationships_to ON entity_relationships (to_entity_id, relationship_type);

-- tracking ----------------------------------------------------------------------------
CREATE TABLE activity_log (
    id          uuid NOT NULL DEFAULT uuid_generate_v7(),
    user_id     uuid,
    entity_id   uuid,
    entity_type varchar(100),
    action      varchar(100) NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    ip_address  varchar(50),
    user_agent  text,
    device      jsonb,
    geo         jsonb,
    meta        jsonb,
    PRIMARY KEY (id)
);
CREATE INDEX idx_activity_log_user_time ON activity_log (user_id, occurred_at DESC);
CREATE INDEX idx_activity_log_action_time ON activity_log (action, occurred_at DESC);

CREATE TABLE entity_events (
    id                uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    entity_id         uuid NOT NULL,
    entity_type_id    uuid,
    entity_event_type varchar(100) NOT NULL DEFAULT 'ENTITY_CHANGE',
    action            varchar(20) NOT NULL,
    performed_by      uuid,
    previous_state    jsonb,
    new_state         jsonb,
    change_summary    text,
    occurred_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_entity_events_entity_time ON entity_events (entity_id, occurred_at DESC);

CREATE TABLE entity_achievements (
    id               uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    entity_id        uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    achievement_type text NOT NULL,
    criteria         jsonb NOT NULL DEFAULT '{}'::jsonb,
    source_event_id  uuid,
    achieved_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT entity_achievements_once UNIQUE (entity_id, achievement_type)
);

CREATE TABLE goal_events (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    goal_id         uuid NOT NULL,
    entity_id       uuid,
    event_type      text NOT NULL,
    progress        numeric,
    meta            jsonb,
    source_event_id uuid,
    occurred_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_goal_events_goal_time ON goal_events (goal_id, occurred_at DESC);

-- analytics (raw) ---------------------------------------------------------------------
CREATE TABLE analytics_sessions (
    session_id text PRIMARY KEY,
    user_code  text,
    share_code text,
    contact_id uuid,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    page_views integer NOT NULL DEFAULT 0,
    clicks     integer NOT NULL DEFAULT 0,
    ip_address varchar(50),
    user_agent text,
    referrer   text
);
CREATE INDEX idx_sessions_user_code_first_seen ON analytics_sessions (user_code, first_seen DESC);
CREATE INDEX idx_sessions_share_code ON analytics_sessions (share_code);

CREATE TABLE analytics_page_views (
    id         uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    session_id text NOT NULL REFERENCES analytics_sessions (session_id) ON DELETE CASCADE,
    user_code  text,
    share_code text,
    contact_id uuid,
    page_type  text NOT NULL,
    viewed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_page_views_user_code_viewed_at ON analytics_page_views (user_code, viewed_at DESC);
CREATE INDEX idx_page_views_session_id ON analytics_page_views (session_id);

CREATE TABLE analytics_clicks (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    session_id     text NOT NULL REFERENCES analytics_sessions (session_id) ON DELETE CASCADE,
    user_code      text,
    share_code     text,
    contact_id     uuid,
    click_target   text NOT NULL,
    click_category text,
    clicked_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_clicks_user_code_clicked_at ON analytics_clicks (user_code, clicked_at DESC);
CREATE INDEX idx_clicks_session_id ON analytics_clicks (session_id);

-- The legacy one-row-per-event JSONB table the normalized tables replace.
CREATE TABLE analytics_events (
    id         uuid NOT NULL DEFAULT uuid_generate_v7(),
    event_type text NOT NULL,
    event_data jsonb NOT NULL DEFAULT '{}'::jsonb,
    session_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
CREATE INDEX idx_analytics_events_created_at ON analytics_events (created_at);
CREATE INDEX idx_analytics_events_type_time ON analytics_events (event_type, created_at DESC);

-- planner -----------------------------------------------------------------------------
CREATE TABLE roadmap_items (
    id                uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    master_project_id uuid NOT NULL,
    track_id          uuid,
    title             text NOT NULL,
    status            text NOT NULL DEFAULT 'active'
        CONSTRAINT roadmap_items_status_check CHECK (status IN ('active', 'completed', 'blocked', 'archived')),
    start_date        date,
    end_date          date,
    created_by        uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_roadmap_items_project_status ON roadmap_items (master_project_id, status);
CREATE INDEX idx_roadmap_items_track_start ON roadmap_items (track_id, start_date) WHERE track_id IS NOT NULL;

CREATE TABLE context_events (
    id         uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    context_id uuid NOT NULL,
    created_by uuid NOT NULL,
    title      text NOT NULL,
    event_type text NOT NULL DEFAULT 'event',
    start_at   timestamptz NOT NULL,
    end_at     timestamptz,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_context_events_context_creator_start ON context_events (context_id, created_by, start_at);
CREATE INDEX idx_context_events_start ON context_events (start_at);
CREATE INDEX idx_context_events_metadata_gin ON context_events USING gin (metadata jsonb_path_ops);

CREATE TABLE calendar_events (
    id               uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    user_id          uuid NOT NULL,
    context_event_id uuid REFERENCES context_events (id) ON DELETE SET NULL,
    title            text NOT NULL,
    start_at         timestamptz NOT NULL,
    end_at           timestamptz,
    all_day          boolean NOT NULL DEFAULT false,
    status           text NOT NULL DEFAULT 'confirmed',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_calendar_events_user_start ON calendar_events (user_id, start_at);
CREATE INDEX idx_calendar_events_context_event ON calendar_events (context_event_id) WHERE context_event_id IS NOT NULL;

CREATE TABLE calendar_projections (
    id                uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    calendar_event_id uuid NOT NULL REFERENCES calendar_events (id) ON DELETE CASCADE,
    target_user_id    uuid NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
        CONSTRAINT calendar_projections_status_check CHECK (status IN ('pending', 'accepted', 'declined')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_calendar_projections_target_status ON calendar_projections (target_user_id, status);
CREATE INDEX idx_calendar_projections_event ON calendar_projections (calendar_event_id);
"""


def upgrade() -> None:
    execute_sql_file("functions/uuid_generate_v7.v1.sql")
    op.execute(UPGRADE)


def downgrade() -> None:
    refuse_data_loss(TABLES, "drop the core schema")
    op.execute("DROP TABLE " + ", ".join(TABLES))
    op.execute("DROP FUNCTION uuid_generate_v7()")
    op.execute("DROP TABLE trackschema.job_runs")
    op.execute("DROP SCHEMA trackschema")
