-- analytics_purge_raw_batch(before, batch_size): delete at most batch_size of the oldest raw
-- page views, clicks and sessions older than `before` (one transaction; call it until it
-- returns zeros). Roll-ups are never touched.
--
-- `before` may not pass trackschema.analytics_raw_horizon.purged_before: the retention job
-- first stops the ingest of older events, aggregates the dirty days below the cutoff, then
-- records the horizon, so that every purged day is final in the roll-ups.
--
-- Session counters stay equal to the raw rows: a session still seen after the cutoff has its
-- counters lowered by the rows deleted here; a session whose last_seen is before the cutoff
-- is deleted itself once its rows are gone (they are all older). Sessions are locked in session_id order, the
-- order analytics_ingest uses, so a purge and an ingest cannot deadlock.
CREATE FUNCTION analytics_purge_raw_batch(p_before timestamptz, p_batch_size integer)
RETURNS TABLE (deleted_page_views integer, deleted_clicks integer, deleted_sessions integer)
LANGUAGE plpgsql
VOLATILE
AS $fn$
DECLARE
    v_horizon timestamptz;
    v_ids     text[];
    v_counts  integer[];
BEGIN
    SELECT h.purged_before INTO v_horizon FROM trackschema.analytics_raw_horizon AS h;
    IF v_horizon IS NULL OR p_before > v_horizon THEN
        RAISE EXCEPTION 'analytics_purge_raw_batch: % is past the recorded retention horizon %', p_before, v_horizon
            USING HINT = 'run the retention job (trackschema jobs run retention), which records the horizon first';
    END IF;

    -- page views
    WITH victims AS (
        SELECT v.ctid FROM analytics_page_views AS v
         WHERE v.viewed_at < p_before ORDER BY v.viewed_at LIMIT p_batch_size
    ), del AS (
        DELETE FROM analytics_page_views AS v
         WHERE v.ctid = ANY (ARRAY(SELECT victims.ctid FROM victims)) AND v.viewed_at < p_before
        RETURNING v.session_id
    ), per_session AS (
        SELECT del.session_id, count(*)::integer AS n FROM del GROUP BY del.session_id
    )
    SELECT coalesce(sum(p.n), 0)::integer, array_agg(p.session_id ORDER BY p.session_id),
           array_agg(p.n ORDER BY p.session_id)
      INTO deleted_page_views, v_ids, v_counts
      FROM per_session AS p;
    IF v_ids IS NOT NULL THEN
        PERFORM 1 FROM analytics_sessions AS s
         WHERE s.session_id = ANY (v_ids) AND s.last_seen >= p_before
         ORDER BY s.session_id COLLATE "C" FOR NO KEY UPDATE;
        UPDATE analytics_sessions AS s SET page_views = greatest(s.page_views - d.n, 0)
          FROM unnest(v_ids, v_counts) AS d(session_id, n)
         WHERE s.session_id = d.session_id AND s.last_seen >= p_before;
    END IF;

    -- clicks
    WITH victims AS (
        SELECT c.ctid FROM analytics_clicks AS c
         WHERE c.clicked_at < p_before ORDER BY c.clicked_at LIMIT p_batch_size
    ), del AS (
        DELETE FROM analytics_clicks AS c
         WHERE c.ctid = ANY (ARRAY(SELECT victims.ctid FROM victims)) AND c.clicked_at < p_before
        RETURNING c.session_id
    ), per_session AS (
        SELECT del.session_id, count(*)::integer AS n FROM del GROUP BY del.session_id
    )
    SELECT coalesce(sum(p.n), 0)::integer, array_agg(p.session_id ORDER BY p.session_id),
           array_agg(p.n ORDER BY p.session_id)
      INTO deleted_clicks, v_ids, v_counts
      FROM per_session AS p;
    IF v_ids IS NOT NULL THEN
        PERFORM 1 FROM analytics_sessions AS s
         WHERE s.session_id = ANY (v_ids) AND s.last_seen >= p_before
         ORDER BY s.session_id COLLATE "C" FOR NO KEY UPDATE;
        UPDATE analytics_sessions AS s SET clicks = greatest(s.clicks - d.n, 0)
          FROM unnest(v_ids, v_counts) AS d(session_id, n)
         WHERE s.session_id = d.session_id AND s.last_seen >= p_before;
    END IF;

    -- sessions that ended before the cutoff, once their page views and clicks are gone
    -- (so that ON DELETE CASCADE never deletes uncounted rows beyond the batch size)
    WITH victims AS (
        SELECT s.session_id FROM analytics_sessions AS s
         WHERE s.first_seen < p_before AND s.last_seen < p_before
           AND NOT EXISTS (SELECT 1 FROM analytics_page_views AS v WHERE v.session_id = s.session_id)
           AND NOT EXISTS (SELECT 1 FROM analytics_clicks AS c WHERE c.session_id = s.session_id)
         ORDER BY s.first_seen LIMIT p_batch_size
    ), locked AS (
        SELECT s.session_id FROM analytics_sessions AS s
         WHERE s.session_id IN (SELECT victims.session_id FROM victims) AND s.last_seen < p_before
         ORDER BY s.session_id COLLATE "C" FOR UPDATE
    ), del AS (
        DELETE FROM analytics_sessions AS s USING locked WHERE s.session_id = locked.session_id
        RETURNING 1
    )
    SELECT count(*)::integer INTO deleted_sessions FROM del;

    RETURN NEXT;
END
$fn$;
