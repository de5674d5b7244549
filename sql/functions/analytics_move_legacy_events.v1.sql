-- analytics_move_legacy_events(batch_size): move the oldest batch_size rows of the legacy
-- JSONB table analytics_events into the normalized tables and archive them, in one statement:
-- the rows are deleted from analytics_events, inserted into analytics_page_views /
-- analytics_clicks / analytics_sessions and into analytics_events_archive together, so no
-- row is lost or moved twice, also while new legacy rows keep arriving (rows other sessions
-- hold locked are skipped, SKIP LOCKED, and taken by a later call). Call it until it returns
-- zero rows moved (trackschema jobs run legacy-analytics-move).
--
-- Mapping (event_data keys, camelCase or snake_case):
--   event_type view/page_view/pageview  -> analytics_page_views (page_type: pageType, page; else 'unknown')
--   event_type click                    -> analytics_clicks (click_target: target, clickTarget, button;
--                                           click_category: category, clickCategory)
--   event_type session/session_start    -> analytics_sessions only
--   user_code: userCode; share_code: shareCode; contact_id: contactId (when a UUID)
--   session: the row's session_id, else event_data sessionId, else one synthetic session
--   'legacy:<user_code>:<share_code>:<UTC day>' per user, share code and day.
-- Page views and clicks keep the legacy row's id, so the move can be undone
-- (analytics_restore_legacy_events). Rows that cannot be mapped (unknown type, no userCode,
-- no click target, values too long) are archived with reject_reason and moved nowhere.
-- Session counters are raised by the counter trigger of the raw tables; sessions the move
-- created are listed in trackschema.analytics_legacy_sessions.
CREATE FUNCTION analytics_move_legacy_events(p_batch_size integer)
RETURNS TABLE (moved integer, moved_page_views integer, moved_clicks integer, sessions_created integer, rejected integer)
LANGUAGE plpgsql
VOLATILE
SET TimeZone = 'UTC'
AS $fn$
BEGIN
    WITH batch AS (
        SELECT e.id, e.created_at
          FROM analytics_events AS e
         ORDER BY e.created_at, e.id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    ), taken AS (
        DELETE FROM analytics_events AS e
         USING batch AS b
         WHERE e.id = b.id AND e.created_at = b.created_at
        RETURNING e.id, e.event_type, e.event_data, e.session_id, e.created_at
    ), fields AS MATERIALIZED (
        SELECT t.*,
               CASE lower(t.event_type)
                   WHEN 'view' THEN 'page_view' WHEN 'page_view' THEN 'page_view' WHEN 'pageview' THEN 'page_view'
                   WHEN 'click' THEN 'click'
                   WHEN 'session' THEN 'session' WHEN 'session_start' THEN 'session'
               END AS kind,
               coalesce(t.event_data ->> 'userCode', t.event_data ->> 'user_code') AS user_code,
               coalesce(t.event_data ->> 'shareCode', t.event_data ->> 'share_code') AS share_code,
               CASE WHEN coalesce(t.event_data ->> 'contactId', t.event_data ->> 'contact_id')
                         ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
                    THEN coalesce(t.event_data ->> 'contactId', t.event_data ->> 'contact_id')::uuid
               END AS contact_id,
               coalesce(t.event_data ->> 'pageType', t.event_data ->> 'page_type', t.event_data ->> 'page', 'unknown') AS page_type,
               coalesce(t.event_data ->> 'target', t.event_data ->> 'clickTarget', t.event_data ->> 'click_target',
                        t.event_data ->> 'button') AS click_target,
               coalesce(t.event_data ->> 'category', t.event_data ->> 'clickCategory', t.event_data ->> 'click_category') AS click_category,
               coalesce(nullif(t.session_id, ''), t.event_data ->> 'sessionId', t.event_data ->> 'session_id') AS given_session
          FROM taken AS t
    ), mapped AS MATERIALIZED (
        SELECT f.*,
               coalesce(f.given_session,
                        'legacy:' || f.user_code || ':' || coalesce(f.share_code, '') || ':'
                        || to_char(f.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')) AS target_session,
               CASE
                   WHEN f.kind IS NULL THEN format('unknown legacy event type %L', left(f.event_type, 40))
                   WHEN coalesce(f.user_code, '') = '' THEN 'no userCode in event_data'
                   WHEN length(f.user_code) > 64 OR length(f.share_code) > 64 THEN 'userCode or shareCode longer than 64 characters'
                   WHEN length(f.given_session) > 128 THEN 'session id longer than 128 characters'
                   WHEN f.kind = 'page_view' AND length(f.page_type) > 100 THEN 'page type longer than 100 characters'
                   WHEN f.kind = 'click' AND coalesce(f.click_target, '') = '' THEN 'no click target in event_data'
                   WHEN f.kind = 'click' AND (length(f.click_target) > 200 OR length(f.click_category) > 100)
                       THEN 'click target or category too long'
               END AS reason
          FROM fields AS f
    ), sess AS (
        INSERT INTO analytics_sessions AS s (session_id, user_code, share_code, contact_id, first_seen, last_seen)
        SELECT m.target_session, max(m.user_code), max(m.share_code), max(m.contact_id::text)::uuid,
               min(m.created_at), max(m.created_at)
          FROM mapped AS m
         WHERE m.reason IS NULL
         GROUP BY m.target_session
         ORDER BY m.target_session COLLATE "C"
        ON CONFLICT (session_id) DO UPDATE
           SET user_code  = coalesce(s.user_code, EXCLUDED.user_code),
               share_code = coalesce(s.share_code, EXCLUDED.share_code),
               contact_id = coalesce(s.contact_id, EXCLUDED.contact_id),
               first_seen = least(s.first_seen, EXCLUDED.first_seen),
               last_seen  = greatest(s.last_seen, EXCLUDED.last_seen)
        RETURNING s.session_id, (s.xmax = 0) AS inserted
    ), created AS (
        INSERT INTO trackschema.analytics_legacy_sessions (session_id)
        SELECT sess.session_id FROM sess WHERE sess.inserted
        ON CONFLICT (session_id) DO NOTHING
        RETURNING 1
    ), pv AS (
        INSERT INTO analytics_page_views (id, session_id, user_code, share_code, contact_id, page_type, viewed_at)
        SELECT m.id, m.target_session, m.user_code, m.share_code, m.contact_id, m.page_type, m.created_at
          FROM mapped AS m
         WHERE m.reason IS NULL AND m.kind = 'page_view'
        RETURNING 1
    ), ck AS (
        INSERT INTO analytics_clicks (id, session_id, user_code, share_code, contact_id, click_target, click_category, clicked_at)
        SELECT m.id, m.target_session, m.user_code, m.share_code, m.contact_id, m.click_target, m.click_category, m.created_at
          FROM mapped AS m
         WHERE m.reason IS NULL AND m.kind = 'click'
        RETURNING 1
    ), arch AS (
        INSERT INTO analytics_events_archive (id, event_type, event_data, session_id, created_at, moved_to, reject_reason)
        SELECT m.id, m.event_type, m.event_data, m.session_id, m.created_at,
               CASE WHEN m.reason IS NOT NULL THEN NULL
                    WHEN m.kind = 'page_view' THEN 'analytics_page_views'
                    WHEN m.kind = 'click' THEN 'analytics_clicks'
                    ELSE 'analytics_sessions' END,
               m.reason
          FROM mapped AS m
        RETURNING reject_reason
    )
    SELECT (SELECT count(*) FROM arch)::integer, (SELECT count(*) FROM pv)::integer, (SELECT count(*) FROM ck)::integer,
           (SELECT count(*) FROM created)::integer,
           (SELECT count(*) FROM arch WHERE arch.reject_reason IS NOT NULL)::integer
      INTO moved, moved_page_views, moved_clicks, sessions_created, rejected;
    RETURN NEXT;
END
$fn$;
