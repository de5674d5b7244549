-- Statement-level trigger function on analytics_page_views and analytics_clicks (AFTER INSERT):
-- rows inserted by anything but analytics_ingest (direct INSERTs, the legacy move) raise
-- their session's page_views/clicks counter once per session per statement and widen its
-- first_seen/last_seen. analytics_ingest counts its own rows in its session upsert and marks
-- that with the transaction-local setting trackschema.analytics_ingest_batch.
-- Sessions are locked in session_id order (as analytics_ingest does) before the update.
CREATE FUNCTION trackschema.analytics_count_session_events()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_ids   text[];
    v_n     integer[];
    v_first timestamptz[];
    v_last  timestamptz[];
BEGIN
    IF coalesce(current_setting('trackschema.analytics_ingest_batch', true), '') <> '' THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'analytics_page_views' THEN
        SELECT array_agg(x.session_id ORDER BY x.session_id COLLATE "C"), array_agg(x.n ORDER BY x.session_id COLLATE "C"),
               array_agg(x.lo ORDER BY x.session_id COLLATE "C"), array_agg(x.hi ORDER BY x.session_id COLLATE "C")
          INTO v_ids, v_n, v_first, v_last
          FROM (SELECT r.session_id, count(*)::integer AS n, min(r.viewed_at) AS lo, max(r.viewed_at) AS hi
                  FROM new_rows AS r GROUP BY r.session_id) AS x;
    ELSE
        SELECT array_agg(x.session_id ORDER BY x.session_id COLLATE "C"), array_agg(x.n ORDER BY x.session_id COLLATE "C"),
               array_agg(x.lo ORDER BY x.session_id COLLATE "C"), array_agg(x.hi ORDER BY x.session_id COLLATE "C")
          INTO v_ids, v_n, v_first, v_last
          FROM (SELECT r.session_id, count(*)::integer AS n, min(r.clicked_at) AS lo, max(r.clicked_at) AS hi
                  FROM new_rows AS r GROUP BY r.session_id) AS x;
    END IF;
    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;

    PERFORM 1 FROM analytics_sessions AS s
     WHERE s.session_id = ANY (v_ids)
     ORDER BY s.session_id COLLATE "C"
       FOR NO KEY UPDATE;
    IF TG_TABLE_NAME = 'analytics_page_views' THEN
        UPDATE analytics_sessions AS s
           SET page_views = s.page_views + d.n,
               first_seen = least(s.first_seen, d.lo),
               last_seen  = greatest(s.last_seen, d.hi)
          FROM unnest(v_ids, v_n, v_first, v_last) AS d(session_id, n, lo, hi)
         WHERE s.session_id = d.session_id;
    ELSE
        UPDATE analytics_sessions AS s
           SET clicks     = s.clicks + d.n,
               first_seen = least(s.first_seen, d.lo),
               last_seen  = greatest(s.last_seen, d.hi)
          FROM unnest(v_ids, v_n, v_first, v_last) AS d(session_id, n, lo, hi)
         WHERE s.session_id = d.session_id;
    END IF;
    RETURN NULL;
END
$fn$;
