"""Change tracking at its floor: the entity_events row is the outbox, read by named consumers.

Every tracked INSERT/UPDATE/DELETE now writes ONE row, the `entity_events` row (v1 wrote
three: the event, an `activity_log` row repeating its who/what/when, an `event_queue` row).
The event records its writing transaction, `entity_events.xid = pg_current_xact_id()`
(new column; also the default for rows inserted directly). A consumer
(`trackschema.consumers`, one row per name) keeps a snapshot as its cursor and takes, window
after window, the events whose transaction is visible in a new snapshot and not in its
last one (`trackschema.consumer_window_events`): a transaction that started earlier but
commits later is in no snapshot yet, so it is never skipped, whatever its id. Events are
read in id order, which is write order (install_entity_tracking v2), so each row's changes
reach a consumer in commit order. Handling a batch and moving the consumer's position
commit together (`consumer_lock`, `consumer_ack`). Only failures become rows of their
own: `event_queue` is renamed `event_retries` and holds failed events per consumer
(retried with backoff, then dead with the error) and the later events of their entities
that wait behind them. docs/design.md#outbox says why; `trackschema queue work/status`
run and show consumers.

Objects:
  * entity_events: column `xid` (xid8) and the partial index idx_entity_events_xid
    (CONCURRENTLY); monthly range partitions by occurred_at, converted online with the
    functions of 0030 (prepare: a NOT VALID check, an instant change under a short lock
    wait; validate without blocking writes; the unique index on (id, occurred_at) built
    CONCURRENTLY; a swap of milliseconds), recorded in trackschema.partitioned_tables, so
    `partitions ensure/list/retire` and the maintenance job handle it; `partitions retire`
    refuses a partition a consumer still needs (`trackschema.consumer_partition_needs`).
    If the 0030 declaration partitioned entity_events already, only the index is added
    (per partition, CONCURRENTLY) and the downgrade leaves the partitioning to 0030
    (`trackschema.outbox` records which case this was).
  * `install_entity_tracking` v2 (sql/functions/install_entity_tracking.v2.sql), called
    again for every table in trackschema.entity_tracking: the generated functions write
    the event only.
  * `trackschema.consumers` and the consumer functions (sql/functions/consumer_*.v1.sql);
    the consumer 'propagate' (handler trackschema.tracking.handlers:propagate, what
    `queue work` ran before) is registered at this revision's snapshot.
  * `event_queue` -> `event_retries` (+ `consumer`, `entity_id`): every pending,
    processing and dead row stays, as a row of the consumer 'propagate' with its attempts,
    lease and error (no event is lost and none is handled twice). The functions
    event_queue_claim/complete/fail give way to consumer_retry_claim/done/fail.
  * the view `event_queue`, for readers and writers of the old table: each consumer's
    failed events and, one row per event, the events it has not handled yet; a row
    inserted into it becomes an event_retries row (trigger event_queue_compat_insert).
  * the view `activity_feed`: the activity feed, one place: every activity_log row (what
    the application logs, and the tracked changes before this revision) and every outbox
    event since (user = performed_by, entity_type = table_name). activity_log itself stays
    (a table the application writes user actions into).

Locks: the conversion's as in 0030 (short waits, retried); the transactional part holds
ACCESS EXCLUSIVE on event_queue (renamed) and the catalog locks of CREATE OR REPLACE
FUNCTION on the tracking functions for milliseconds; writers of tracked tables queued
behind it go on with the v2 functions. Offline (`--sql`) the conversion runs without the
prebuilt index (the swap builds it when the table is small, as in 0030) and assumes the
default partition declaration (entity_events not partitioned by 0030).

Downgrade, the other way, without loss: under SHARE lock on entity_events (writers that
wrote with v2 finish first, none starts until the commit), the events the consumer
'propagate' has not handled go back into event_queue as pending rows, its event_retries
rows stay (pending, processing or dead, as they were); activity_log gets the rows of the
changes tracked while at this revision (no activity_log row was written for them);
v1 tracking and the event_queue functions come back; entity_events becomes a plain table
again (0030's partition_unconvert: rows of every monthly partition folded into the history
table under ACCESS EXCLUSIVE, measured by 0030 at about 20-45k rows a second) unless 0030
partitioned it; the `xid` column goes. The other consumers' cursors and failed events
cannot be represented before this revision: the downgrade refuses while any of them has
events to handle or failures, unless run with `--allow-data-loss`.

Revision ID: 0090_tracking_outbox
Revises: 0080_analytics_index_review
Create Date: 2026-12-07
"""

from __future__ import annotations

from sqlalchemy import text

from alembic import context, op
from trackschema.migration_ops import execute_sql_file
from trackschema.settings import Settings, pg_interval

revision: str = "0090_tracking_outbox"
down_revision: str | None = "0080_analytics_index_review"
branch_labels = None
depends_on = None

DEFAULT_CONSUMER = "propagate"
DEFAULT_HANDLER = "trackschema.tracking.handlers:propagate"

# In dependency order (later ones call earlier ones), with the signature the downgrade drops.
FUNCTIONS = [
    ("functions/consumer_register.v1.sql", "trackschema.consumer_register(text, text, integer)"),
    ("functions/consumer_window_events.v1.sql", "trackschema.consumer_window_events(pg_snapshot, pg_snapshot)"),
    ("functions/consumer_pending_events.v1.sql", "trackschema.consumer_pending_events(text)"),
    ("functions/consumer_next_window.v1.sql", "trackschema.consumer_next_window(text)"),
    ("functions/consumer_lock.v1.sql", "trackschema.consumer_lock(text, bigint, uuid)"),
    ("functions/consumer_ack.v1.sql", "trackschema.consumer_ack(text, bigint, uuid, bigint, boolean)"),
    ("functions/consumer_retry_add.v1.sql", "trackschema.consumer_retry_add(text, uuid[], text, interval, interval)"),
    ("functions/consumer_retry_claim.v1.sql", "trackschema.consumer_retry_claim(text, text, integer, interval)"),
    ("functions/consumer_retry_done.v1.sql", "trackschema.consumer_retry_done(bigint[], uuid)"),
    ("functions/consumer_retry_fail.v1.sql", "trackschema.consumer_retry_fail(bigint, uuid, text, interval, interval)"),
    ("functions/consumer_unregister.v1.sql", "trackschema.consumer_unregister(text)"),
    ("functions/consumer_status.v1.sql", "trackschema.consumer_status()"),
    ("functions/consumer_partition_needs.v1.sql", "trackschema.consumer_partition_needs(regclass)"),
]
# The event_queue worker functions of 0004, reinstalled by the downgrade.
QUEUE_V1 = [
    ("functions/event_queue_claim.v1.sql", "event_queue_claim(text, integer, interval)"),
    ("functions/event_queue_complete.v1.sql", "event_queue_complete(bigint[], uuid)"),
    ("functions/event_queue_fail.v1.sql", "event_queue_fail(bigint, uuid, text, interval, interval)"),
]

# Part 1, before the conversion: the column (rerunnable, for a rerun after a failed
# conversion) and what this revision is about to do to entity_events.
PREPARE = """
ALTER TABLE entity_events ADD COLUMN IF NOT EXISTS xid xid8;
COMMENT ON COLUMN entity_events.xid IS 'the writing transaction (pg_current_xact_id()): consumers take the events whose transaction committed between two of their snapshots';
CREATE TABLE IF NOT EXISTS trackschema.outbox (
    singleton                     boolean PRIMARY KEY DEFAULT true CONSTRAINT outbox_singleton CHECK (singleton),
    entity_events_partitioned_here boolean NOT NULL,
    installed_at                  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE trackschema.outbox IS 'revision 0090: whether it partitioned entity_events itself (its downgrade undoes only that)';
INSERT INTO trackschema.outbox (entity_events_partitioned_here)
SELECT c.relkind = 'r' FROM pg_class c WHERE c.oid = 'public.entity_events'::regclass
ON CONFLICT (singleton) DO NOTHING;
"""

RETRIES = f"""
-- rows inserted directly into entity_events are outbox events too
ALTER TABLE entity_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
-- squawk-ignore renaming-table -- the view event_queue, created below in this transaction, serves readers and writers of the old name
ALTER TABLE event_queue RENAME TO event_retries;
ALTER TABLE event_retries ADD COLUMN consumer text NOT NULL DEFAULT '{DEFAULT_CONSUMER}';
ALTER TABLE event_retries ADD COLUMN entity_id uuid;
UPDATE event_retries r SET entity_id = e.entity_id FROM entity_events e WHERE e.id = r.entity_event_id;
COMMENT ON TABLE event_retries IS 'failed outbox events per consumer (retried with backoff, then dead with last_error), and the events of their entities waiting behind them; before 0090 the event_queue';
COMMENT ON COLUMN event_retries.consumer IS 'the consumer (trackschema.consumers) the event failed for; rows moved from event_queue belong to the default consumer';
COMMENT ON COLUMN event_retries.entity_id IS 'the entity of the event: its later events wait behind this row until it is done or dead';
-- squawk-ignore require-concurrent-index-creation -- the RENAME above holds ACCESS EXCLUSIVE on this table until commit anyway; it holds failures only
CREATE INDEX idx_event_retries_open ON event_retries (consumer, entity_id) WHERE status <> 'dead';

CREATE TABLE trackschema.consumers (
    id              bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT consumers_id_key UNIQUE,
    name            text PRIMARY KEY CONSTRAINT consumers_name_check CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$' AND length(name) <= 60),
    handler         text,
    snapshot        pg_snapshot NOT NULL,
    snapshot_at     timestamptz NOT NULL,
    window_no       bigint NOT NULL DEFAULT 0,
    window_snapshot pg_snapshot,
    window_at       timestamptz,
    position        uuid,
    handled         bigint NOT NULL DEFAULT 0,
    max_attempts    bigint NOT NULL DEFAULT 5 CONSTRAINT consumers_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 1000),
    registered_at   timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz
) WITH (fillfactor = 50);
COMMENT ON TABLE trackschema.consumers IS 'named consumers of the entity_events outbox: each one''s cursor is a snapshot (everything visible in it is handled), plus the window being handled and the position in it';
COMMENT ON COLUMN trackschema.consumers.snapshot IS 'every outbox event whose transaction is visible in this snapshot is handled (or an event_retries row)';
COMMENT ON COLUMN trackschema.consumers.window_snapshot IS 'the open window: events visible in it and not in snapshot; NULL between windows';
COMMENT ON COLUMN trackschema.consumers.position IS 'the id of the last event of the open window handled (events are read in id order)';
"""

COMPAT_VIEWS = """
CREATE VIEW event_queue AS
SELECT r.id, r.event_type, r.payload, r.entity_event_id, r.status, r.attempts, r.max_attempts, r.available_at,
       r.created_at, r.claimed_at, r.claimed_by, r.claim_token, r.failed_at, r.last_error, r.consumer
  FROM event_retries r
UNION ALL
SELECT NULL::bigint, (coalesce(p.table_name, 'entity') || '.' || lower(p.action))::varchar(100), '{}'::jsonb, p.id,
       'pending'::event_queue_status, 0, c.max_attempts::event_queue_max_attempts, p.occurred_at, p.occurred_at,
       NULL::timestamptz, NULL::text, NULL::uuid, NULL::timestamptz, NULL::text, c.name
  FROM trackschema.consumers c
 CROSS JOIN LATERAL trackschema.consumer_pending_events(c.name) AS p;
COMMENT ON VIEW event_queue IS 'since 0090: what each consumer still has to do, for readers of the old table: its failed events (event_retries) and, one row per event, the outbox events it has not handled; an INSERT becomes an event_retries row';
CREATE TRIGGER event_queue_compat_insert INSTEAD OF INSERT ON event_queue FOR EACH ROW EXECUTE FUNCTION event_queue_compat_insert();

CREATE VIEW activity_feed AS
SELECT a.id, a.user_id, a.entity_id, a.entity_type, a.action, a.occurred_at, a.ip_address, a.user_agent,
       a.device, a.geo, a.meta, a.entity_event_id
  FROM activity_log a
UNION ALL
SELECT e.id, e.performed_by, e.entity_id, e.table_name::varchar(100), e.action::varchar(100), e.occurred_at,
       NULL::varchar(50), NULL::text, NULL::jsonb, NULL::jsonb, NULL::jsonb, e.id
  FROM entity_events e
 WHERE e.xid IS NOT NULL;
COMMENT ON VIEW activity_feed IS 'the activity feed: activity_log rows (what the application logs, and tracked changes before 0090) and the tracked changes since, read from entity_events (no activity_log row is written for them)';
"""

REINSTALL_TRACKING = """
SELECT install_entity_tracking(t.table_name::regclass, t.entity_column, t.ignored_columns::name[])
  FROM trackschema.entity_tracking t
 WHERE to_regclass(t.table_name) IS NOT NULL
 ORDER BY t.table_name
"""

# Downgrade: refuse while consumers other than 'propagate' have work (their state has no
# place before this revision). Reads only.
GUARD = f"""
DO $guard$
BEGIN
    IF coalesce(current_setting('trackschema.allow_data_loss', true), '') <> 'on'
       AND to_regclass('trackschema.consumers') IS NOT NULL
       AND EXISTS (SELECT 1 FROM trackschema.consumer_status() s
                    WHERE s.name <> '{DEFAULT_CONSUMER}' AND s.lag_events + s.dead > 0) THEN
        RAISE EXCEPTION 'refusing to remove the outbox consumers: consumers other than {DEFAULT_CONSUMER} have events to handle or failed events'
            USING HINT = 'let them catch up (trackschema queue status), or unregister them, or rerun with --allow-data-loss';
    END IF;
END
$guard$;
"""

DOWN_QUEUE = f"""
-- writers that wrote with the v2 functions finish first; none starts until this commits
LOCK TABLE entity_events IN SHARE MODE;
-- the changes tracked since the upgrade get the activity_log rows v1 writes for each change
INSERT INTO activity_log (id, user_id, entity_id, entity_type, action, occurred_at, entity_event_id)
SELECT uuid_generate_v7(), e.performed_by, e.entity_id, e.table_name, e.action, e.occurred_at, e.id
  FROM entity_events e
 WHERE e.xid IS NOT NULL AND e.table_name IS NOT NULL;
-- the events 'propagate' has not handled go back into the queue, after its failed ones
INSERT INTO event_retries (consumer, event_type, entity_event_id, entity_id, created_at, available_at)
SELECT '{DEFAULT_CONSUMER}', coalesce(p.table_name, 'entity') || '.' || lower(p.action), p.id, p.entity_id, p.occurred_at, p.occurred_at
  FROM trackschema.consumer_pending_events('{DEFAULT_CONSUMER}') AS p
 ORDER BY p.id;
DELETE FROM event_retries WHERE consumer <> '{DEFAULT_CONSUMER}';
DROP VIEW activity_feed;
DROP VIEW event_queue;
DROP FUNCTION event_queue_compat_insert();
-- (idx_event_retries_open goes with the columns)
ALTER TABLE event_retries DROP COLUMN entity_id, DROP COLUMN consumer;
-- squawk-ignore renaming-table -- the table gets back the name it had before the upgrade renamed it; the view of that name was dropped above
ALTER TABLE event_retries RENAME TO event_queue;
COMMENT ON TABLE event_queue IS 'events waiting for the queue worker; finished events are deleted, dead ones stay with last_error';
"""


def _settings() -> Settings:
    return context.config.attributes.get("settings") or Settings.from_env()


def _step_lock_timeout() -> str:
    """Writers queue behind a waiting ACCESS EXCLUSIVE request: keep that wait short (as 0030)."""
    return "'" + pg_interval(min(_settings().lock_timeout, 0.5)) + "'"


def _offline() -> bool:
    return bool(op.get_context().as_sql)


def _invalid(name: str) -> bool:
    """Online: index `name` exists but is INVALID (a failed concurrent build, dropped and rebuilt)."""
    if _offline():
        return False
    row = op.get_bind().execute(
        text("""SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE c.relname = :name AND c.relnamespace = 'public'::regnamespace"""), {"name": name}
    ).first()
    return bool(row and row[0])


def _run_prebuild() -> None:
    """Online: the CREATE UNIQUE INDEX CONCURRENTLY statements 0030's swap/unconvert want first."""
    rows = op.get_bind().execute(text("SELECT trackschema.partition_prebuild_sql('public.entity_events'::regclass)")).fetchall()
    for (statement,) in rows:
        op.execute(statement)


def _index_partitions() -> None:
    """Online, entity_events already partitioned (by the 0030 declaration): the xid index
    on the parent only, then CONCURRENTLY on each partition, attached to it."""
    op.execute("CREATE INDEX IF NOT EXISTS idx_entity_events_xid ON ONLY entity_events (xid) WHERE xid IS NOT NULL")
    parts = op.get_bind().execute(
        text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = 'public.entity_events'::regclass ORDER BY c.relname")
    ).fetchall()
    for (part,) in parts:
        index = (part[:45] + "_xid_idx").replace('"', '""')
        quoted = part.replace('"', '""')
        op.execute(f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index}" ON "{quoted}" (xid) WHERE xid IS NOT NULL')
        attached = op.get_bind().execute(
            text("SELECT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = 'public.idx_entity_events_xid'::regclass "
                 "AND i.inhrelid = to_regclass(:ix))"), {"ix": f'"{index}"'}
        ).scalar()
        if not attached:
            op.execute(f'ALTER INDEX idx_entity_events_xid ATTACH PARTITION "{index}"')


def upgrade() -> None:
    op.execute(PREPARE)
    timeout = _step_lock_timeout()
    here = "FROM trackschema.outbox WHERE entity_events_partitioned_here"
    with op.get_context().autocommit_block():
        partitioned = (not _offline()) and op.get_bind().execute(
            text("SELECT relkind = 'p' FROM pg_class WHERE oid = 'public.entity_events'::regclass")).scalar()
        if partitioned:
            _index_partitions()
        else:
            if _invalid("idx_entity_events_xid"):
                op.execute("DROP INDEX CONCURRENTLY IF EXISTS idx_entity_events_xid")
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_entity_events_xid ON entity_events (xid) WHERE xid IS NOT NULL")
        op.execute(f"SELECT trackschema.partition_convert_prepare('public.entity_events', 'occurred_at', 3, false, {timeout}) {here}")
        op.execute(f"SELECT trackschema.partition_convert_validate('public.entity_events') {here}")
        if not _offline():
            _run_prebuild()
        op.execute(f"SELECT trackschema.partition_convert_swap('public.entity_events', {timeout}) {here}")

    op.execute(RETRIES)
    for path, _signature in FUNCTIONS:
        execute_sql_file(path)
    execute_sql_file("triggers/event_queue_compat_insert.v1.sql")
    op.execute(f"SELECT trackschema.consumer_register('{DEFAULT_CONSUMER}', '{DEFAULT_HANDLER}', 5)")
    op.execute(COMPAT_VIEWS)
    for _path, signature in QUEUE_V1:
        op.execute(f"-- squawk-ignore ban-drop-function -- replaced by consumer_retry_claim/done/fail on the renamed table; the downgrade reinstalls it\n"
                   f"DROP FUNCTION {signature}")
    execute_sql_file("functions/install_entity_tracking.v2.sql")
    op.execute(REINSTALL_TRACKING)


def downgrade() -> None:
    op.execute(GUARD)
    timeout = _step_lock_timeout()
    here = "FROM trackschema.outbox WHERE entity_events_partitioned_here"
    # First, rerunnable: entity_events a plain table again (if this revision partitioned it).
    with op.get_context().autocommit_block():
        if not _offline():
            partitioned_here = op.get_bind().execute(
                text("SELECT entity_events_partitioned_here FROM trackschema.outbox")).scalar()
            if partitioned_here:
                _run_prebuild()
        op.execute(f"SELECT trackschema.partition_unconvert('public.entity_events', {timeout}) {here}")
    op.execute(DOWN_QUEUE)
    for path, _signature in QUEUE_V1:
        execute_sql_file(path)
    execute_sql_file("functions/install_entity_tracking.v1.sql")
    op.execute(REINSTALL_TRACKING)
    for _path, signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP TABLE trackschema.consumers")
    op.execute("ALTER TABLE entity_events DROP COLUMN xid")  # idx_entity_events_xid goes with it
    op.execute("DROP TABLE trackschema.outbox")
