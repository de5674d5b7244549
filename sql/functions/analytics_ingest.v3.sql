-- analytics_ingest(batch), version 3: the Citus variant (revision 0101_citus_analytics installs
-- it on Citus only; its downgrade, and plain PostgreSQL, keep version 2).
--
-- What changed from v2, and why (as analytics_ingest_land v2): on Citus the raw tables are
-- distributed by user_code and a session's key is (user_code, session_id):
--   * sessions are grouped and upserted by (user_code, session_id), ON CONFLICT
--     (user_code, session_id); user_code (the distribution value) is never updated. Events
--     of one session_id under two user codes are two sessions here;
--   * the raw tables have no statement triggers on Citus: this function marks the UTC days
--     it wrote (trackschema.analytics_mark_days): the days of every accepted event, and the
--     first_seen day each touched session had before this batch (read first, for a session
--     whose first_seen moves to an earlier day). The session counters are raised by the
--     upsert, as in v2.
-- Nothing else changed: signature, attributes, checks, result.
--
-- (v2) analytics_ingest(batch), version 2 (revision 0070_analytics_ingest_iso_times).
--
-- What changed from v1, and why: v1 read event time strings (first_seen, viewed_at,
-- clicked_at, last_seen) with PostgreSQL's timestamptz input, which also accepts what is
-- not an event time: the special words 'now', 'today', 'yesterday', 'tomorrow', Julian
-- dates ('J2461379'), time-zone names ('2026-12-04 10:00 PST8PDT') and dates without a time
-- of day. v1 accepted them as event times ('epoch' and 'infinity' it rejected only as out
-- of range). v2 first matches every time string, on the fast path and on the careful path
-- (trackschema.analytics_try_timestamptz) alike, against one regular expression, c_iso_time:
--     YYYY-MM-DD, 'T' or one space, hh:mm or hh:mm:ss or hh:mm:ss.fraction (any number of
--     digits), then optionally 'Z' or an offset +hh:mm / +hhmm / +hh (or with '-')
-- A string that does not match reads as NULL, which is the existing reject
-- 'unparsable <field> "<value>"'; a string that matches is cast as before (an impossible
-- date such as 2026-02-30 still fails the cast and is the same reject; no offset = UTC, the
-- function runs with TimeZone = 'UTC'). Decided deliberately:
--   * a date alone ('2026-12-04') is rejected: an event time has a time of day, and v1
--     read it as midnight UTC, a time the event did not happen at;
--   * hh:mm without seconds is accepted (ISO 8601 reduced precision, an exact instant);
--   * only ASCII digits, upper-case 'T' and 'Z', no surrounding white space, no zone
--     names or abbreviations, no week or ordinal dates.
-- JSON numbers (epoch milliseconds) are read as in v1. Nothing else changed: same
-- signature, attributes, settings and statements. Installed with CREATE OR REPLACE so the
-- owner and the grants (EXECUTE revoked from PUBLIC in 0012, granted to the ingest role in
-- 0013) are kept.
--
-- analytics_ingest(batch): load one batch shaped like the seed's POST /api/analytics/ingest
-- body, {"events": [{"type": "session"|"page_view"|"click", "data": {...}}, ...]}, set-based,
-- in the caller's transaction. Returns a summary:
--   {"batch_id", "events", "accepted", "sessions_new", "sessions_updated", "page_views",
--    "clicks", "rejected": [{"index": i, "reason": "..."}]}
-- where index is the event's 0-based position in the events array.
--
-- data fields (snake_case, as the table columns):
--   every event: session_id, user_code (required), share_code, contact_id (uuid)
--   session:     first_seen, last_seen, ip_address, user_agent, referrer
--   page_view:   page_type (required), viewed_at
--   click:       click_target (required), click_category, clicked_at
-- Times are ISO 8601 strings (no offset = UTC) or epoch milliseconds; a missing time is the
-- time of the call. Times before 2000, before the retention horizon, or more than an hour
-- ahead are rejected.
--
-- Every event is validated; invalid ones are recorded in trackschema.analytics_ingest_rejects
-- and reported, the valid rest lands. Sessions referenced by page views or clicks are created
-- when missing. Each session touched is upserted once: first_seen/last_seen widened to the
-- batch's events, page_views/clicks raised by the batch's counts, attributes filled where
-- still NULL (the first value a session gets is kept).
--
-- Locks: the session rows are upserted in session_id order, so concurrent batches touching
-- the same sessions queue behind each other instead of deadlocking; the counter trigger on
-- the raw tables is skipped for the rows this function inserts (it counted them already).
-- A shared advisory lock (0x74726B11) keeps the retention job from moving the horizon while
-- a batch is in flight.
--
-- SECURITY DEFINER: an ingest role needs EXECUTE only (see revision 0013).
CREATE OR REPLACE FUNCTION analytics_ingest(p_batch jsonb)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, MDY'
AS $fn$
DECLARE
    c_max_events    constant integer := 10000;
    c_max_bytes     constant integer := 4096;
    c_max_skew      constant interval := interval '1 hour';
    -- The only accepted form of a time string (see the header); anything else is unparsable.
    c_iso_time      constant text :=
        '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$';
    v_batch_id      uuid := uuid_generate_v7();
    -- Row ids: the batch id with its last 32 bits replaced by the event's index: still
    -- time-ordered UUIDv7 (42 random bits per batch), without a random draw per row.
    v_id_base       bytea := uuid_send(v_batch_id);
    v_now           timestamptz := now();
    v_floor         timestamptz;
    v_ceiling       timestamptz := now() + c_max_skew;
    v_careful       boolean := false;
    v_result        jsonb;
    v_days          date[];
    v_old_days      date[];
BEGIN
    IF jsonb_typeof(p_batch) IS DISTINCT FROM 'object' OR jsonb_typeof(p_batch -> 'events') IS DISTINCT FROM 'array' THEN
        INSERT INTO trackschema.analytics_ingest_rejects (batch_id, event_index, reason, event)
        VALUES (v_batch_id, NULL, 'the batch is not an object with an "events" array', left(p_batch::text, 2048));
        RETURN jsonb_build_object(
            'batch_id', v_batch_id, 'events', 0, 'accepted', 0, 'sessions_new', 0, 'sessions_updated', 0,
            'page_views', 0, 'clicks', 0,
            'rejected', jsonb_build_array(jsonb_build_object(
                'index', NULL, 'reason', 'the batch is not an object with an "events" array')));
    END IF;

    PERFORM pg_advisory_xact_lock_shared(1953655569, 0);
    SELECT greatest(timestamptz '2000-01-01 00:00:00+00', h.accept_from) INTO v_floor
      FROM trackschema.analytics_raw_horizon AS h;
    v_floor := coalesce(v_floor, timestamptz '2000-01-01 00:00:00+00');
    PERFORM set_config('trackschema.analytics_ingest_batch', v_batch_id::text, true);
    -- the first_seen days the touched sessions have now (stale if first_seen moves earlier)
    SELECT array_agg(DISTINCT (t.first_seen AT TIME ZONE 'UTC')::date) INTO v_old_days
      FROM analytics_sessions AS t
     WHERE (t.user_code, t.session_id) IN (
               SELECT e.val -> 'data' ->> 'user_code', e.val -> 'data' ->> 'session_id'
                 FROM jsonb_array_elements(p_batch -> 'events') AS e(val)
                WHERE jsonb_typeof(e.val) = 'object' AND jsonb_typeof(e.val -> 'data') = 'object');
    v_old_days := coalesce(v_old_days, '{}'::date[]);

    LOOP
        BEGIN
            WITH ev AS MATERIALIZED (
                SELECT (e.ord - 1)::integer AS idx, e.val AS ev
                  FROM jsonb_array_elements(p_batch -> 'events') WITH ORDINALITY AS e(val, ord)
            ), chk AS MATERIALIZED (
                -- OFFSET 0 keeps each LATERAL step from being flattened, so every value is
                -- computed once per event however often the checks below refer to it.
                SELECT ev.idx, h.type, f.session_id, f.user_code, f.share_code, t.contact_id, f.page_type,
                       f.click_target, f.click_category, f.ip_address, f.user_agent, f.referrer, t.ts, t.ts2,
                       r.reason,
                       CASE WHEN r.reason IS NOT NULL THEN left(ev.ev::text, 2048) END AS event_text
                  FROM ev
                 CROSS JOIN LATERAL (
                       SELECT ev.ev -> 'data' AS d, ev.ev ->> 'type' AS type OFFSET 0) AS h
                 CROSS JOIN LATERAL (
                       SELECT jsonb_typeof(ev.ev) AS ev_kind, jsonb_typeof(h.d) AS d_kind, pg_column_size(ev.ev) AS size,
                              jsonb_typeof(h.d -> 'session_id') AS sid_kind, h.d ->> 'session_id' AS session_id,
                              jsonb_typeof(h.d -> 'user_code') AS user_kind, h.d ->> 'user_code' AS user_code,
                              h.d ->> 'share_code' AS share_code, h.d ->> 'contact_id' AS contact_raw,
                              h.d ->> 'page_type' AS page_type, h.d ->> 'click_target' AS click_target,
                              h.d ->> 'click_category' AS click_category, h.d ->> 'ip_address' AS ip_address,
                              h.d ->> 'user_agent' AS user_agent, h.d ->> 'referrer' AS referrer,
                              CASE h.type WHEN 'page_view' THEN 'viewed_at' WHEN 'click' THEN 'clicked_at'
                                          ELSE 'first_seen' END AS ts_field,
                              nullif(CASE h.type WHEN 'page_view' THEN h.d -> 'viewed_at'
                                                 WHEN 'click' THEN h.d -> 'clicked_at'
                                                 WHEN 'session' THEN h.d -> 'first_seen' END, 'null'::jsonb) AS ts_json,
                              nullif(CASE WHEN h.type = 'session' THEN h.d -> 'last_seen' END, 'null'::jsonb) AS ts2_json
                       OFFSET 0) AS f
                 CROSS JOIN LATERAL (
                       SELECT CASE WHEN f.ts_json IS NULL THEN v_now
                                   WHEN jsonb_typeof(f.ts_json) = 'string' AND (f.ts_json #>> '{}') !~ c_iso_time THEN NULL
                                   WHEN v_careful THEN trackschema.analytics_try_timestamptz(f.ts_json)
                                   WHEN jsonb_typeof(f.ts_json) = 'string' THEN (f.ts_json #>> '{}')::timestamptz
                                   WHEN jsonb_typeof(f.ts_json) = 'number'
                                       THEN to_timestamp((f.ts_json #>> '{}')::double precision / 1000)
                              END AS ts,
                              CASE WHEN f.ts2_json IS NULL THEN NULL
                                   WHEN jsonb_typeof(f.ts2_json) = 'string' AND (f.ts2_json #>> '{}') !~ c_iso_time THEN NULL
                                   WHEN v_careful THEN trackschema.analytics_try_timestamptz(f.ts2_json)
                                   WHEN jsonb_typeof(f.ts2_json) = 'string' THEN (f.ts2_json #>> '{}')::timestamptz
                                   WHEN jsonb_typeof(f.ts2_json) = 'number'
                                       THEN to_timestamp((f.ts2_json #>> '{}')::double precision / 1000)
                              END AS ts2,
                              CASE WHEN f.contact_raw IS NULL THEN NULL
                                   WHEN v_careful THEN trackschema.analytics_try_uuid(f.contact_raw)
                                   ELSE f.contact_raw::uuid
                              END AS contact_id
                       OFFSET 0) AS t
                 CROSS JOIN LATERAL (
                       SELECT CASE
                           WHEN ev.idx >= c_max_events THEN format('the batch holds more than %s events', c_max_events)
                           WHEN f.ev_kind <> 'object' THEN 'the event is not a JSON object'
                           WHEN f.size > c_max_bytes THEN format('the event is %s bytes, over the limit of %s', f.size, c_max_bytes)
                           WHEN h.type IS NULL THEN 'missing type'
                           WHEN h.type NOT IN ('session', 'page_view', 'click') THEN format('unknown type %L', left(h.type, 40))
                           WHEN f.d_kind IS DISTINCT FROM 'object' THEN 'missing data object'
                           WHEN f.sid_kind IS NULL OR f.sid_kind = 'null' OR f.session_id = '' THEN 'missing session_id'
                           WHEN f.sid_kind NOT IN ('string', 'number') THEN 'session_id is not a string'
                           WHEN length(f.session_id) > 128 THEN 'session_id is longer than 128 characters'
                           WHEN f.user_kind IS NULL OR f.user_kind = 'null' OR f.user_code = '' THEN 'missing user_code'
                           WHEN f.user_kind NOT IN ('string', 'number') THEN 'user_code is not a string'
                           WHEN length(f.user_code) > 64 THEN 'user_code is longer than 64 characters'
                           WHEN length(f.share_code) > 64 THEN 'share_code is longer than 64 characters'
                           WHEN f.contact_raw IS NOT NULL AND t.contact_id IS NULL THEN 'contact_id is not a UUID'
                           WHEN h.type = 'page_view' AND coalesce(f.page_type, '') = '' THEN 'missing page_type'
                           WHEN h.type = 'page_view' AND length(f.page_type) > 100 THEN 'page_type is longer than 100 characters'
                           WHEN h.type = 'click' AND coalesce(f.click_target, '') = '' THEN 'missing click_target'
                           WHEN h.type = 'click' AND length(f.click_target) > 200 THEN 'click_target is longer than 200 characters'
                           WHEN h.type = 'click' AND length(f.click_category) > 100 THEN 'click_category is longer than 100 characters'
                           WHEN h.type = 'session' AND length(f.ip_address) > 50 THEN 'ip_address is longer than 50 characters'
                           WHEN h.type = 'session' AND length(f.user_agent) > 1000 THEN 'user_agent is longer than 1000 characters'
                           WHEN h.type = 'session' AND length(f.referrer) > 2000 THEN 'referrer is longer than 2000 characters'
                           WHEN t.ts IS NULL THEN format('unparsable %s %s', f.ts_field, left(f.ts_json::text, 60))
                           WHEN t.ts < v_floor THEN format('%s %s is before %s', f.ts_field, t.ts, v_floor)
                           WHEN t.ts > v_ceiling THEN format('%s %s is in the future', f.ts_field, t.ts)
                           WHEN f.ts2_json IS NOT NULL AND t.ts2 IS NULL THEN format('unparsable last_seen %s', left(f.ts2_json::text, 60))
                           WHEN t.ts2 < t.ts THEN 'last_seen is before first_seen'
                           WHEN t.ts2 > v_ceiling THEN format('last_seen %s is in the future', t.ts2)
                       END AS reason
                       OFFSET 0) AS r
            ), ok AS (
                SELECT * FROM chk WHERE chk.reason IS NULL
            ), sess_in AS (
                SELECT o.session_id, o.user_code,
                       coalesce(max(o.share_code) FILTER (WHERE o.type = 'session'), max(o.share_code)) AS share_code,
                       coalesce(max(o.contact_id::text) FILTER (WHERE o.type = 'session'), max(o.contact_id::text))::uuid AS contact_id,
                       min(o.ts) AS first_seen,
                       max(coalesce(o.ts2, o.ts)) AS last_seen,
                       (count(*) FILTER (WHERE o.type = 'page_view'))::integer AS page_views,
                       (count(*) FILTER (WHERE o.type = 'click'))::integer AS clicks,
                       max(o.ip_address) FILTER (WHERE o.type = 'session') AS ip_address,
                       max(o.user_agent) FILTER (WHERE o.type = 'session') AS user_agent,
                       max(o.referrer) FILTER (WHERE o.type = 'session') AS referrer
                  FROM ok AS o
                 GROUP BY o.user_code, o.session_id
            ), s_up AS (
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
                RETURNING (t.xmax = 0) AS inserted, (t.first_seen AT TIME ZONE 'UTC')::date AS day
            ), pv AS (
                INSERT INTO analytics_page_views (id, session_id, user_code, share_code, contact_id, page_type, viewed_at)
                SELECT encode(overlay(v_id_base PLACING int4send(o.idx) FROM 13 FOR 4), 'hex')::uuid,
                       o.session_id, o.user_code, o.share_code, o.contact_id, o.page_type, o.ts
                  FROM ok AS o WHERE o.type = 'page_view'
                 ORDER BY o.idx
                RETURNING (viewed_at AT TIME ZONE 'UTC')::date AS day
            ), ck AS (
                INSERT INTO analytics_clicks
                       (id, session_id, user_code, share_code, contact_id, click_target, click_category, clicked_at)
                SELECT encode(overlay(v_id_base PLACING int4send(o.idx) FROM 13 FOR 4), 'hex')::uuid,
                       o.session_id, o.user_code, o.share_code, o.contact_id, o.click_target, o.click_category, o.ts
                  FROM ok AS o WHERE o.type = 'click'
                 ORDER BY o.idx
                RETURNING (clicked_at AT TIME ZONE 'UTC')::date AS day
            ), rj AS (
                INSERT INTO trackschema.analytics_ingest_rejects (batch_id, event_index, event_type, reason, event)
                SELECT v_batch_id, c.idx, left(c.type, 40), c.reason, c.event_text
                  FROM chk AS c WHERE c.reason IS NOT NULL
                RETURNING event_index, reason
            )
            SELECT jsonb_build_object(
                       'batch_id', v_batch_id,
                       'events', (SELECT count(*) FROM chk),
                       'accepted', (SELECT count(*) FROM ok),
                       'sessions_new', (SELECT count(*) FILTER (WHERE s_up.inserted) FROM s_up),
                       'sessions_updated', (SELECT count(*) FILTER (WHERE NOT s_up.inserted) FROM s_up),
                       'page_views', (SELECT count(*) FROM pv),
                       'clicks', (SELECT count(*) FROM ck),
                       'rejected', coalesce((SELECT jsonb_agg(jsonb_build_object('index', rj.event_index, 'reason', rj.reason)
                                                              ORDER BY rj.event_index) FROM rj), '[]'::jsonb)),
                   ARRAY(SELECT s_up.day FROM s_up UNION SELECT pv.day FROM pv UNION SELECT ck.day FROM ck
                         UNION SELECT (o.ts AT TIME ZONE 'UTC')::date FROM ok AS o)
              INTO v_result, v_days;
            EXIT;
        EXCEPTION WHEN data_exception THEN
            -- A value the fast casts could not read: redo the batch with per-value checks.
            IF v_careful THEN
                RAISE;
            END IF;
            v_careful := true;
        END;
    END LOOP;

    -- the days this batch wrote (no triggers mark them on Citus)
    PERFORM trackschema.analytics_mark_days(v_days || v_old_days);
    PERFORM set_config('trackschema.analytics_ingest_batch', '', true);
    RETURN v_result;
END
$fn$;
