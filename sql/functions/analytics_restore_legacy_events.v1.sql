-- analytics_restore_legacy_events(batch_size): the rollback of analytics_move_legacy_events.
-- Takes the most recently archived batch_size rows out of analytics_events_archive and puts
-- them back into analytics_events unchanged, deleting in the same statement the page views
-- and clicks the move made of them (same ids). Then, in the same transaction: the counters
-- of the sessions concerned are lowered by the rows removed, sessions the move created that
-- have no page view or click left are deleted, and the UTC days concerned are marked dirty
-- so the next aggregate-daily run recomputes their roll-ups. first_seen/last_seen widened by
-- the move stay widened. Call it until it returns zero rows restored
-- (trackschema jobs run legacy-analytics-restore).
CREATE FUNCTION analytics_restore_legacy_events(p_batch_size integer)
RETURNS TABLE (restored integer, page_views_removed integer, clicks_removed integer, sessions_removed integer)
LANGUAGE plpgsql
VOLATILE
AS $fn$
DECLARE
    v_ids    text[];
    v_views  integer[];
    v_clicks integer[];
    v_days   date[];
BEGIN
    WITH batch AS (
        SELECT a.id FROM analytics_events_archive AS a
         ORDER BY a.archived_at DESC, a.id DESC
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    ), back AS (
        DELETE FROM analytics_events_archive AS a USING batch AS b
         WHERE a.id = b.id
        RETURNING a.id, a.event_type, a.event_data, a.session_id, a.created_at, a.moved_to
    ), dpv AS (
        DELETE FROM analytics_page_views AS p USING back AS b
         WHERE b.moved_to = 'analytics_page_views' AND p.id = b.id
        RETURNING p.session_id, p.viewed_at AS at, 1 AS views, 0 AS clicks
    ), dck AS (
        DELETE FROM analytics_clicks AS c USING back AS b
         WHERE b.moved_to = 'analytics_clicks' AND c.id = b.id
        RETURNING c.session_id, c.clicked_at AS at, 0 AS views, 1 AS clicks
    ), ins AS (
        INSERT INTO analytics_events (id, event_type, event_data, session_id, created_at)
        SELECT b.id, b.event_type, b.event_data, b.session_id, b.created_at FROM back AS b
        RETURNING 1
    ), removed AS (
        SELECT * FROM dpv UNION ALL SELECT * FROM dck
    ), per_session AS (
        SELECT r.session_id, sum(r.views)::integer AS views, sum(r.clicks)::integer AS clicks
          FROM removed AS r GROUP BY r.session_id
    )
    SELECT (SELECT count(*) FROM ins)::integer,
           (SELECT count(*) FROM dpv)::integer,
           (SELECT count(*) FROM dck)::integer,
           (SELECT array_agg(p.session_id ORDER BY p.session_id COLLATE "C") FROM per_session AS p),
           (SELECT array_agg(p.views ORDER BY p.session_id COLLATE "C") FROM per_session AS p),
           (SELECT array_agg(p.clicks ORDER BY p.session_id COLLATE "C") FROM per_session AS p),
           ARRAY(SELECT DISTINCT (r.at AT TIME ZONE 'UTC')::date FROM removed AS r)
      INTO restored, page_views_removed, clicks_removed, v_ids, v_views, v_clicks, v_days;

    sessions_removed := 0;
    IF v_ids IS NOT NULL THEN
        PERFORM 1 FROM analytics_sessions AS s
         WHERE s.session_id = ANY (v_ids)
         ORDER BY s.session_id COLLATE "C"
           FOR UPDATE;
        UPDATE analytics_sessions AS s
           SET page_views = greatest(s.page_views - d.views, 0), clicks = greatest(s.clicks - d.clicks, 0)
          FROM unnest(v_ids, v_views, v_clicks) AS d(session_id, views, clicks)
         WHERE s.session_id = d.session_id;
        WITH gone AS (
            DELETE FROM analytics_sessions AS s
             USING trackschema.analytics_legacy_sessions AS l
             WHERE l.session_id = s.session_id AND s.session_id = ANY (v_ids)
               AND NOT EXISTS (SELECT 1 FROM analytics_page_views AS p WHERE p.session_id = s.session_id)
               AND NOT EXISTS (SELECT 1 FROM analytics_clicks AS c WHERE c.session_id = s.session_id)
            RETURNING s.session_id, s.first_seen
        ), forgotten AS (
            DELETE FROM trackschema.analytics_legacy_sessions AS l USING gone AS g
             WHERE l.session_id = g.session_id
        )
        SELECT count(*)::integer, v_days || array_agg((g.first_seen AT TIME ZONE 'UTC')::date)
          INTO sessions_removed, v_days
          FROM gone AS g;
    END IF;
    PERFORM trackschema.analytics_mark_days(v_days);
    RETURN NEXT;
END
$fn$;
