"""The reviewed justifications of squawk's findings on released revisions.

Released revisions never change (README, "Released history never changes"), so a finding
squawk reports on one is justified here, and `annotate` writes it into the `--sql`
rendering as a comment right above the line squawk points at:

    -- squawk-ignore prefer-text-field -- <reason>

An entry names the revision, the direction (its upgrade or its downgrade SQL), the rule,
the statement (its first line, runs of whitespace as one space, without `;`) and, when
squawk points further down the statement (a column, a domain's CONSTRAINT line), that
line. So an entry covers exactly one finding: a new revision, another statement or
another column of the same table is not covered. `python -m trackschema.migrations.lint`
fails on an entry that matches nothing or suppresses nothing.

New revisions do not add entries here: they emit their own `-- squawk-ignore RULE --
reason` line above the statement (docs/lint.md). Before changing an entry, read
docs/lint.md: several of these are patterns new revisions must avoid.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Justification:
    revision: str | None  # None: Alembic's own version table, created before the first revision
    direction: str  # "upgrade" or "downgrade"
    rule: str
    statement: str
    reason: str
    at: str | None = None  # the line squawk points at, when not the statement's first


def _up(revision: str | None, rule: str, statement: str, reason: str, at: str | None = None) -> Justification:
    return Justification(revision, "upgrade", rule, statement, reason, at)


def _down(revision: str, rule: str, statement: str, reason: str, at: str | None = None) -> Justification:
    return Justification(revision, "downgrade", rule, statement, reason, at)


# Reasons shared by several findings.
LABEL = (
    "a short label in a table this revision creates (no traffic to block now); widening it later is a new "
    "revision (to text: no rewrite, a brief ACCESS EXCLUSIVE lock); new columns use text"
)
IP = "an IP address as text (IPv6 is at most 45 characters), in a table this revision creates; new columns use inet or text"
DAILY = (
    "a count per code per UTC day: 2^31 is 25 000 events a second for a whole day under one code; "
    "the roll-up job would fail loudly (integer out of range), never wrap"
)
VALIDATE = (
    "outside the transaction on purpose (a long scan holding only SHARE UPDATE EXCLUSIVE) and idempotent: "
    "after a failure a rerun validates again, or finds the constraint valid and does nothing"
)
MATVIEW_INDEX = (
    "index on a materialized view this same transaction created: no other session can see the view "
    "before COMMIT, so nothing waits (and CONCURRENTLY cannot run in a transaction)"
)
IN_STEP = (
    "contract: the in-step CHECKs 0022 added only while dual-write ran; with the trigger gone, a writer of "
    "the column alone would violate them (downgrade re-adds them NOT VALID, then validates)"
)

JUSTIFICATIONS: tuple[Justification, ...] = (
    # Alembic's version table (Alembic writes this DDL, not a revision).
    _up(None, "prefer-text-field", "CREATE TABLE alembic_version (",
        "Alembic's own version table, created by Alembic before the first revision",
        at="version_num VARCHAR(32) NOT NULL,"),

    # 0001_core_schema: the seed schema's column types.
    _up("0001_core_schema", "prefer-bigint-over-int", "CREATE TABLE trackschema.job_runs (",
        "a server process id: pg_backend_pid() returns integer",
        at="backend_pid integer NOT NULL DEFAULT pg_backend_pid()"),
    _up("0001_core_schema", "prefer-text-field", "CREATE TABLE activity_log (", LABEL, at="entity_type varchar(100),"),
    _up("0001_core_schema", "prefer-text-field", "CREATE TABLE activity_log (", LABEL, at="action varchar(100) NOT NULL,"),
    _up("0001_core_schema", "prefer-text-field", "CREATE TABLE activity_log (", IP, at="ip_address varchar(50),"),
    _up("0001_core_schema", "prefer-text-field", "CREATE TABLE entity_events (", LABEL,
        at="entity_event_type varchar(100) NOT NULL DEFAULT 'ENTITY_CHANGE',"),
    _up("0001_core_schema", "prefer-text-field", "CREATE TABLE entity_events (", LABEL, at="action varchar(20) NOT NULL,"),
    _up("0001_core_schema", "prefer-bigint-over-int", "CREATE TABLE analytics_sessions (",
        "page views of one session: no session comes near 2^31", at="page_views integer NOT NULL DEFAULT 0,"),
    _up("0001_core_schema", "prefer-bigint-over-int", "CREATE TABLE analytics_sessions (",
        "clicks of one session: no session comes near 2^31", at="clicks integer NOT NULL DEFAULT 0,"),
    _up("0001_core_schema", "prefer-text-field", "CREATE TABLE analytics_sessions (", IP, at="ip_address varchar(50),"),

    # 0003_entity_tracking: the event queue.
    _up("0003_entity_tracking", "ban-create-domain-with-constraint", "CREATE DOMAIN event_queue_status AS text",
        "deliberate (see the comment above: checked once per session, not re-planned per write); changing the "
        "check later takes a new revision: ALTER DOMAIN ... ADD CONSTRAINT ... NOT VALID, then VALIDATE",
        at="CONSTRAINT event_queue_status_check CHECK (VALUE IN ('pending', 'processing', 'dead'));"),
    _up("0003_entity_tracking", "ban-create-domain-with-constraint", "CREATE DOMAIN event_queue_max_attempts AS integer",
        "deliberate, as event_queue_status above; the check (> 0) is not expected to change",
        at="CONSTRAINT event_queue_max_attempts_check CHECK (VALUE > 0);"),
    _up("0003_entity_tracking", "prefer-text-field", "CREATE TABLE event_queue (", LABEL, at="event_type varchar(100) NOT NULL,"),
    _up("0003_entity_tracking", "prefer-bigint-over-int", "CREATE TABLE event_queue (",
        "delivery attempts of one event: event_queue_fail marks it dead once attempts reach max_attempts",
        at="attempts integer NOT NULL DEFAULT 0,"),

    # Undoing 0003: the functions its upgrade generated by calling install_entity_tracking()
    # (the lint cannot see a function created by EXECUTE, so these drops are named here).
    *(_down("0003_entity_tracking", "ban-drop-function", f"DROP FUNCTION track_{table}_change()",
            f"undoing 0003_entity_tracking: its upgrade generated track_{table}_change with install_entity_tracking('{table}')")
      for table in ("entities", "contacts", "addresses", "address_contacts", "entity_touchpoints", "entity_relationships")),

    # 0011_analytics_rollups: daily roll-ups.
    _up("0011_analytics_rollups", "prefer-bigint-over-int", "CREATE TABLE analytics_daily_user_stats (", DAILY,
        at="total_sessions integer NOT NULL DEFAULT 0,"),
    _up("0011_analytics_rollups", "prefer-bigint-over-int", "CREATE TABLE analytics_daily_user_stats (", DAILY,
        at="total_page_views integer NOT NULL DEFAULT 0,"),
    _up("0011_analytics_rollups", "prefer-bigint-over-int", "CREATE TABLE analytics_daily_user_stats (", DAILY,
        at="total_clicks integer NOT NULL DEFAULT 0,"),
    _up("0011_analytics_rollups", "prefer-bigint-over-int", "CREATE TABLE analytics_daily_group_stats (", DAILY,
        at="total_sessions integer NOT NULL DEFAULT 0,"),
    _up("0011_analytics_rollups", "prefer-bigint-over-int", "CREATE TABLE analytics_daily_group_stats (", DAILY,
        at="total_page_views integer NOT NULL DEFAULT 0,"),
    _up("0011_analytics_rollups", "prefer-bigint-over-int", "CREATE TABLE analytics_daily_group_stats (", DAILY,
        at="total_clicks integer NOT NULL DEFAULT 0,"),
    _up("0011_analytics_rollups", "prefer-bigint-over-int", "CREATE TABLE analytics_daily_click_targets (", DAILY,
        at="click_count integer NOT NULL DEFAULT 0,"),
    _up("0011_analytics_rollups", "prefer-bigint-over-int", "CREATE TABLE analytics_daily_page_stats (", DAILY,
        at="view_count integer NOT NULL DEFAULT 0,"),

    # 0012_analytics_ingest
    _up("0012_analytics_ingest", "prefer-bigint-over-int", "CREATE TABLE trackschema.analytics_ingest_rejects (",
        "an event's position in one batch (a jsonb array: at most 255 MB, far fewer than 2^31 elements)",
        at="event_index integer,"),

    # 0020_promotion_expand: backfill bookkeeping.
    _up("0020_promotion_expand", "prefer-bigint-over-int", "CREATE TABLE trackschema.backfill_checkpoints (",
        "passes over one table (a new pass only after a restart or a table rewrite)", at="pass integer NOT NULL DEFAULT 1,"),
    _up("0020_promotion_expand", "prefer-bigint-over-int", "CREATE TABLE trackschema.backfill_batches (",
        "rows of one batch: batch pages (default at most 50 000) x at most 291 rows per 8 kB page; docs/lint.md",
        at="rows_done integer NOT NULL,"),
    _up("0020_promotion_expand", "prefer-bigint-over-int", "CREATE TABLE trackschema.backfill_batches (",
        "rejected rows of one batch: at most its rows_done", at="rows_rejected integer NOT NULL,"),

    # 0021_promotion_validate and 0022_promotion_switch: VALIDATE CONSTRAINT in an autocommit block.
    _up("0021_promotion_validate", "prefer-robust-stmts",
        'ALTER TABLE "context_events" VALIDATE CONSTRAINT "context_events_source_type_check"', VALIDATE),
    _up("0021_promotion_validate", "prefer-robust-stmts",
        'ALTER TABLE "context_events" VALIDATE CONSTRAINT "context_events_source_roadmap_item_id_fkey"', VALIDATE),
    _up("0022_promotion_switch", "prefer-robust-stmts",
        'ALTER TABLE "context_events" VALIDATE CONSTRAINT "context_events_source_type_in_step"', VALIDATE),
    _up("0022_promotion_switch", "prefer-robust-stmts",
        'ALTER TABLE "context_events" VALIDATE CONSTRAINT "context_events_source_roadmap_item_id_in_step"', VALIDATE),
    _up("0022_promotion_switch", "prefer-robust-stmts",
        'ALTER TABLE "context_events" VALIDATE CONSTRAINT "context_events_source_itinerary_item_id_in_step"', VALIDATE),

    # 0023_promotion_contract: the contract step removes the dual-write scaffolding.
    _up("0023_promotion_contract", "ban-drop-constraint",
        'ALTER TABLE "context_events" DROP CONSTRAINT IF EXISTS "context_events_source_type_in_step"', IN_STEP),
    _up("0023_promotion_contract", "ban-drop-constraint",
        'ALTER TABLE "context_events" DROP CONSTRAINT IF EXISTS "context_events_source_roadmap_item_id_in_step"', IN_STEP),
    _up("0023_promotion_contract", "ban-drop-constraint",
        'ALTER TABLE "context_events" DROP CONSTRAINT IF EXISTS "context_events_source_itinerary_item_id_in_step"', IN_STEP),
    _up("0023_promotion_contract", "ban-drop-function", 'DROP FUNCTION "context_events_promote_metadata"()',
        "contract: the dual-write trigger function, dropped right after its trigger; no client calls a trigger "
        "function (downgrade reinstalls both)"),
    _down("0023_promotion_contract", "prefer-robust-stmts",
          'ALTER TABLE "context_events" VALIDATE CONSTRAINT "context_events_source_type_in_step"', VALIDATE),
    _down("0023_promotion_contract", "prefer-robust-stmts",
          'ALTER TABLE "context_events" VALIDATE CONSTRAINT "context_events_source_roadmap_item_id_in_step"', VALIDATE),
    _down("0023_promotion_contract", "prefer-robust-stmts",
          'ALTER TABLE "context_events" VALIDATE CONSTRAINT "context_events_source_itinerary_item_id_in_step"', VALIDATE),

    # 0030_partition_tracking_tables
    _up("0030_partition_tracking_tables", "prefer-bigint-over-int", "CREATE TABLE IF NOT EXISTS trackschema.partitioned_tables (",
        "months of partitions created ahead: CHECK (months_ahead BETWEEN 0 AND 120) on the next line",
        at="months_ahead integer NOT NULL DEFAULT 3"),

    # 0040_materialized_views
    _up("0040_materialized_views", "prefer-bigint-over-int", "CREATE TABLE trackschema.matview_refreshes (",
        "a refresh rank among a handful of materialized views", at="refresh_order integer NOT NULL DEFAULT 100,"),
    _up("0040_materialized_views", "require-concurrent-index-creation",
        "CREATE UNIQUE INDEX dashboard_statistics_key ON dashboard_statistics (entity_type, entity_id)", MATVIEW_INDEX),
    _up("0040_materialized_views", "require-concurrent-index-creation",
        "CREATE UNIQUE INDEX contact_management_view_key ON contact_management_view (contact_id, address_key)", MATVIEW_INDEX),
    _up("0040_materialized_views", "require-concurrent-index-creation",
        "CREATE INDEX idx_contact_management_view_name ON contact_management_view (first_name, last_name)", MATVIEW_INDEX),
    _up("0040_materialized_views", "require-concurrent-index-creation",
        "CREATE INDEX idx_contact_management_view_email ON contact_management_view (email)", MATVIEW_INDEX),
    _up("0040_materialized_views", "require-concurrent-index-creation",
        "CREATE UNIQUE INDEX analytics_dashboard_key ON analytics_dashboard (user_code, day)", MATVIEW_INDEX),
)
