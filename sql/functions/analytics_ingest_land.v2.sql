-- analytics_ingest_land(), version 2: the Citus variant (revision 0101_citus_analytics installs
-- it on Citus only; its downgrade, and plain PostgreSQL, keep version 1).
--
-- What changed from v1, and why: on Citus the raw tables are distributed by user_code, and
-- a session's key is (user_code, session_id) (docs/citus.md#analytics):
--   * sessions are grouped and upserted by (user_code, session_id): ON CONFLICT
--     (user_code, session_id), and user_code is never updated (it is the distribution
--     value). The ingest refuses events without a user_code, so every staged event has one;
--     events of one session_id under two user codes are two sessions here (one on plain
--     PostgreSQL, which keeps the first user code);
--   * page views and clicks: ON CONFLICT (user_code, id) DO NOTHING; duplicates taken off
--     the counters of their (user_code, session_id);
--   * the statement triggers of the raw tables are not there on Citus (their transition
--     tables do not work on shards, and the dirty-day markers are a coordinator table): this
--     function marks the days itself (trackschema.analytics_mark_days): the UTC days of every
--     staged event, and the first_seen days the touched sessions had before (a session whose
--     first_seen moves to an earlier day leaves its old day stale). The session counters
--     need no trigger: the upsert raises them, as in v1.
-- Nothing else changed: signature, attributes, checks, result.
--
-- analytics_ingest_land() (v1): land the events analytics_ingest_check() staged in this
-- transaction (pg_temp.analytics_ingest_staging), set-based: one statement per table.
--   * sessions: one upsert per session, in session_id order (the lock order of
--     analytics_ingest, the counter trigger and retention): created when missing,
--     first_seen/last_seen widened to the staged events, page_views/clicks raised by the
--     staged page views and clicks, attributes filled where still NULL (the first value a
--     session gets is kept), as analytics_ingest does;
--   * page views, clicks: INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING. An id that is
--     stored already, or staged twice, is the same event (ids are content ids, see
--     analytics_ingest_check()): it lands once. Only when fewer rows landed than were staged
--     are the skipped ones looked for (repeats within the batch, and ids the statement did
--     not return): they are recorded in trackschema.analytics_ingest_rejects as duplicates,
--     naming the first of the batch when there is one, and taken off their sessions'
--     counters again (rows this transaction has locked already).
-- The counter trigger of the raw tables is skipped for these rows: analytics_ingest_check()
-- set trackschema.analytics_ingest_batch to its batch id for the transaction (the rejects of
-- this call carry it too); it is cleared here, so later inserts of the same transaction are
-- counted by the trigger again.
--
-- A client may check the next batch on another connection meanwhile; landings should run one
-- at a time (two that touch the same sessions wait for each other, in session_id order).
--
-- Returns {"accepted", "sessions_new", "sessions_updated", "page_views", "clicks",
-- "duplicates", "refused": [{"line", "index", "reason"}] (the first 100 duplicates)}.
--
-- SECURITY DEFINER: an ingest role needs EXECUTE only (the staging table is written by
-- analytics_ingest_check() alone).
CREATE OR REPLACE FUNCTION analytics_ingest_land()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, MDY'
AS $fn$
DECLARE
    c_listed     constant integer := 100;
    v_batch      text := coalesce(current_setting('trackschema.analytics_ingest_batch', true), '');
    v_id_base    bytea;
    v_accepted   bigint := 0;
    v_new        integer := 0;
    v_updated    integer := 0;
    v_want_pv    bigint := 0;
    v_want_ck    bigint := 0;
    v_pv         integer := 0;
    v_ck         integer := 0;
    v_dup_keys   bigint[];
    v_duplicates integer := 0;
    v_listed     jsonb := '[]'::jsonb;
    v_days       date[];
BEGIN
    IF v_batch !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       OR NOT EXISTS (SELECT 1 FROM pg_class AS c
                       WHERE c.oid = to_regclass('pg_temp.analytics_ingest_staging') AND c.relkind = 'r'
                         AND c.relowner = (SELECT r.oid FROM pg_roles AS r WHERE r.rolname = current_user)) THEN
        RAISE EXCEPTION 'analytics_ingest_land: nothing checked in this transaction'
            USING HINT = 'per batch, in one transaction: COPY the lines, SELECT analytics_ingest_check(), then this';
    END IF;
    v_id_base := uuid_send(v_batch::uuid);

    -- the first_seen days the touched sessions have now (stale if first_seen moves earlier)
    SELECT array_agg(DISTINCT (t.first_seen AT TIME ZONE 'UTC')::date) INTO v_days
      FROM analytics_sessions AS t
     WHERE (t.user_code, t.session_id) IN (SELECT s.user_code, s.session_id FROM pg_temp.analytics_ingest_staging AS s);

    WITH sess_in AS MATERIALIZED (
        SELECT o.session_id, o.user_code,
               coalesce(max(o.share_code) FILTER (WHERE o.type = 'session'), max(o.share_code)) AS share_code,
               coalesce(max(o.contact_id::text) FILTER (WHERE o.type = 'session'), max(o.contact_id::text))::uuid AS contact_id,
               min(o.ts) AS first_seen,
               max(coalesce(o.ts2, o.ts)) AS last_seen,
               (count(*) FILTER (WHERE o.type = 'page_view'))::integer AS page_views,
               (count(*) FILTER (WHERE o.type = 'click'))::integer AS clicks,
               max(o.ip_address) FILTER (WHERE o.type = 'session') AS ip_address,
               max(o.user_agent) FILTER (WHERE o.type = 'session') AS user_agent,
               max(o.referrer) FILTER (WHERE o.type = 'session') AS referrer,
               count(*) AS events
          FROM pg_temp.analytics_ingest_staging AS o
         GROUP BY o.user_code, o.session_id
    ), up AS (
        INSERT INTO analytics_sessions AS t
               (session_id, user_code, share_code, contact_id, first_seen, last_seen, page_views, clicks,
                ip_address, user_agent, referrer)
        SELECT s.session_id, s.user_code, s.share_code, s.contact_id, s.first_seen, s.last_seen,
               s.page_views, s.clicks, s.ip_address, s.user_agent, s.referrer
          FROM sess_in AS s
         ORDER BY s.user_code COLLATE "C", s.session_id COLLATE "C"
        ON CONFLICT (user_code, session_id) DO UPDATE
           SET share_code = coalesce(t.share_code, EXCLUDED.share_code),
               contact_id = coalesce(t.contact_id, EXCLUDED.contact_id),
               first_seen = least(t.first_seen, EXCLUDED.first_seen),
               last_seen  = greatest(t.last_seen, EXCLUDED.last_seen),
               page_views = t.page_views + EXCLUDED.page_views,
               clicks     = t.clicks + EXCLUDED.clicks,
               ip_address = coalesce(t.ip_address, EXCLUDED.ip_address),
               user_agent = coalesce(t.user_agent, EXCLUDED.user_agent),
               referrer   = coalesce(t.referrer, EXCLUDED.referrer)
        RETURNING (t.xmax = 0) AS inserted
    )
    SELECT (SELECT count(*) FILTER (WHERE up.inserted) FROM up), (SELECT count(*) FILTER (WHERE NOT up.inserted) FROM up),
           (SELECT coalesce(sum(x.events), 0) FROM sess_in AS x), (SELECT coalesce(sum(x.page_views), 0) FROM sess_in AS x),
           (SELECT coalesce(sum(x.clicks), 0) FROM sess_in AS x)
      INTO v_new, v_updated, v_accepted, v_want_pv, v_want_ck;

    WITH ins AS (
        INSERT INTO analytics_page_views (id, session_id, user_code, share_code, contact_id, page_type, viewed_at)
        SELECT s.id, s.session_id, s.user_code, s.share_code, s.contact_id, s.target, s.ts
          FROM pg_temp.analytics_ingest_staging AS s
         WHERE s.type = 'page_view'
        ON CONFLICT (user_code, id) DO NOTHING
        RETURNING id
    ), n AS (
        SELECT count(*) AS landed FROM ins
    )
    SELECT n.landed,
           CASE WHEN n.landed < v_want_pv THEN (
               SELECT array_agg(x.line::bigint << 32 | x.idx)
                 FROM (SELECT s.line, s.idx, s.id, row_number() OVER (PARTITION BY s.id ORDER BY s.line, s.idx) AS n
                         FROM pg_temp.analytics_ingest_staging AS s WHERE s.type = 'page_view') AS x
                WHERE x.n > 1 OR NOT EXISTS (SELECT 1 FROM ins WHERE ins.id = x.id)) END
      INTO v_pv, v_dup_keys
      FROM n;

    WITH ins AS (
        INSERT INTO analytics_clicks (id, session_id, user_code, share_code, contact_id, click_target, click_category, clicked_at)
        SELECT s.id, s.session_id, s.user_code, s.share_code, s.contact_id, s.target, s.category, s.ts
          FROM pg_temp.analytics_ingest_staging AS s
         WHERE s.type = 'click'
        ON CONFLICT (user_code, id) DO NOTHING
        RETURNING id
    ), n AS (
        SELECT count(*) AS landed FROM ins
    )
    SELECT n.landed,
           CASE WHEN n.landed < v_want_ck THEN coalesce(v_dup_keys, '{}'::bigint[]) || (
               SELECT array_agg(x.line::bigint << 32 | x.idx)
                 FROM (SELECT s.line, s.idx, s.id, row_number() OVER (PARTITION BY s.id ORDER BY s.line, s.idx) AS n
                         FROM pg_temp.analytics_ingest_staging AS s WHERE s.type = 'click') AS x
                WHERE x.n > 1 OR NOT EXISTS (SELECT 1 FROM ins WHERE ins.id = x.id)) ELSE v_dup_keys END
      INTO v_ck, v_dup_keys
      FROM n;

    -- Duplicates (rare): of a stored event, or of an earlier event of this batch. Recorded,
    -- and taken off their sessions' counters (rows this transaction has locked already).
    IF v_dup_keys IS NOT NULL THEN
        WITH w AS (
            SELECT s.line, s.idx, s.type, s.session_id, s.user_code, s.share_code, s.contact_id, s.target, s.category, s.ts,
                   row_number() OVER p AS n, first_value(s.line) OVER p AS first_line, first_value(s.idx) OVER p AS first_idx
              FROM pg_temp.analytics_ingest_staging AS s
             WHERE s.type <> 'session'
            WINDOW p AS (PARTITION BY s.id ORDER BY s.line, s.idx)
        ), d AS MATERIALIZED (
            SELECT w.*,
                   CASE WHEN w.n > 1 THEN format('duplicate event: the same as event %s of line %s', w.first_idx, w.first_line)
                        ELSE format('duplicate event: this %s was ingested before', w.type) END AS reason
              FROM w
              JOIN unnest(v_dup_keys) AS k(key) ON k.key = (w.line::bigint << 32 | w.idx)
        ), rec AS (
            INSERT INTO trackschema.analytics_ingest_rejects (batch_id, event_index, event_type, reason, event)
            SELECT encode(overlay(v_id_base PLACING int4send(d.line) FROM 13 FOR 4), 'hex')::uuid, d.idx, d.type, d.reason,
                   left(jsonb_build_object('type', d.type, 'data', jsonb_strip_nulls(jsonb_build_object(
                       'session_id', d.session_id, 'user_code', d.user_code, 'share_code', d.share_code,
                       'contact_id', d.contact_id,
                       CASE d.type WHEN 'page_view' THEN 'page_type' ELSE 'click_target' END, d.target,
                       'click_category', d.category,
                       CASE d.type WHEN 'page_view' THEN 'viewed_at' ELSE 'clicked_at' END, d.ts)))::text, 2048)
              FROM d
             ORDER BY d.line, d.idx
            RETURNING 1
        ), fix AS (
            UPDATE analytics_sessions AS t
               SET page_views = t.page_views - x.views, clicks = t.clicks - x.clicks
              FROM (SELECT d.user_code, d.session_id, count(*) FILTER (WHERE d.type = 'page_view') AS views,
                           count(*) FILTER (WHERE d.type = 'click') AS clicks
                      FROM d GROUP BY d.user_code, d.session_id) AS x
             WHERE t.user_code = x.user_code AND t.session_id = x.session_id
        )
        SELECT (SELECT count(*) FROM rec),
               coalesce((SELECT jsonb_agg(jsonb_build_object('line', x.line, 'index', x.idx, 'reason', x.reason)
                                          ORDER BY x.line, x.idx)
                           FROM (SELECT d.line, d.idx, d.reason FROM d ORDER BY d.line, d.idx LIMIT c_listed) AS x), '[]'::jsonb)
          INTO v_duplicates, v_listed;
    END IF;

    -- the days this batch wrote (no triggers mark them on Citus)
    PERFORM trackschema.analytics_mark_days(coalesce(v_days, '{}'::date[]) || ARRAY(
        SELECT DISTINCT (s.ts AT TIME ZONE 'UTC')::date FROM pg_temp.analytics_ingest_staging AS s));

    PERFORM set_config('trackschema.analytics_ingest_batch', '', true);
    RETURN jsonb_build_object(
        'accepted', v_accepted - v_duplicates,
        'sessions_new', v_new,
        'sessions_updated', v_updated,
        'page_views', v_pv,
        'clicks', v_ck,
        'duplicates', v_duplicates,
        'refused', v_listed);
END
$fn$;
