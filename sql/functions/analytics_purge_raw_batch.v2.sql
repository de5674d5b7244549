-- analytics_purge_raw_batch(before, batch_size), version 2: the Citus variant (revision
-- 0101_citus_analytics installs it on Citus only; its downgrade, and plain PostgreSQL, keep
-- version 1).
--
-- What changed from v1, and why: on Citus the raw tables are distributed by user_code.
--   * v1 picks its victims by ctid, which names a row only within one shard: v2 picks them by
--     key, (user_code, id) for page views and clicks and (user_code, session_id) for
--     sessions, into arrays (one multi-shard SELECT ... ORDER BY ... LIMIT each), then
--     deletes those keys;
--   * sessions are matched by (user_code, session_id) (their key on Citus), so every join
--     stays on one shard;
--   * the sessions are not locked in session_id order first (Citus has no multi-shard
--     SELECT ... FOR UPDATE); the counter UPDATE takes the row locks itself. The Citus
--     ingest locks sessions in (user_code, session_id) order per shard; run retention in
--     the retention job's window, as on one node.
-- Semantics unchanged: at most batch_size of the oldest rows of each table, counters of
-- sessions still seen after the cutoff lowered, ended sessions deleted once their rows are
-- gone, the horizon check first. Same signature (CREATE OR REPLACE: owner, grants kept).
CREATE OR REPLACE FUNCTION analytics_purge_raw_batch(p_before timestamptz, p_batch_size integer)
RETURNS TABLE (deleted_page_views integer, deleted_clicks integer, deleted_sessions integer)
LANGUAGE plpgsql
VOLATILE
AS $fn$
DECLARE
    v_horizon timestamptz;
    v_codes   text[];
    v_keys    text[];
    v_rows    uuid[];
    v_counts  integer[];
BEGIN
    SELECT h.purged_before INTO v_horizon FROM trackschema.analytics_raw_horizon AS h;
    IF v_horizon IS NULL OR p_before > v_horizon THEN
        RAISE EXCEPTION 'analytics_purge_raw_batch: % is past the recorded retention horizon %', p_before, v_horizon
            USING HINT = 'run the retention job (trackschema jobs run retention), which records the horizon first';
    END IF;

    -- page views
    SELECT array_agg(x.user_code), array_agg(x.id) INTO v_codes, v_rows
      FROM (SELECT v.user_code, v.id FROM analytics_page_views AS v
             WHERE v.viewed_at < p_before ORDER BY v.viewed_at, v.user_code, v.id LIMIT p_batch_size) AS x;
    deleted_page_views := 0;
    IF v_codes IS NOT NULL THEN
        WITH del AS (
            DELETE FROM analytics_page_views AS v
             WHERE (v.user_code, v.id) IN (SELECT u.c, u.i FROM unnest(v_codes, v_rows) AS u(c, i)) AND v.viewed_at < p_before
            RETURNING v.user_code, v.session_id
        )
        SELECT array_agg(p.user_code ORDER BY p.user_code, p.session_id), array_agg(p.session_id ORDER BY p.user_code, p.session_id),
               array_agg(p.n ORDER BY p.user_code, p.session_id), coalesce(sum(p.n), 0)::integer
          INTO v_codes, v_keys, v_counts, deleted_page_views
          FROM (SELECT del.user_code, del.session_id, count(*)::integer AS n FROM del GROUP BY 1, 2) AS p;
        UPDATE analytics_sessions AS s SET page_views = greatest(s.page_views - d.n, 0)
          FROM (SELECT * FROM unnest(v_codes, v_keys, v_counts) AS u(user_code, session_id, n)) AS d
         WHERE s.user_code = d.user_code AND s.session_id = d.session_id AND s.last_seen >= p_before;
    END IF;

    -- clicks
    SELECT array_agg(x.user_code), array_agg(x.id) INTO v_codes, v_rows
      FROM (SELECT c.user_code, c.id FROM analytics_clicks AS c
             WHERE c.clicked_at < p_before ORDER BY c.clicked_at, c.user_code, c.id LIMIT p_batch_size) AS x;
    deleted_clicks := 0;
    IF v_codes IS NOT NULL THEN
        WITH del AS (
            DELETE FROM analytics_clicks AS c
             WHERE (c.user_code, c.id) IN (SELECT u.c, u.i FROM unnest(v_codes, v_rows) AS u(c, i)) AND c.clicked_at < p_before
            RETURNING c.user_code, c.session_id
        )
        SELECT array_agg(p.user_code ORDER BY p.user_code, p.session_id), array_agg(p.session_id ORDER BY p.user_code, p.session_id),
               array_agg(p.n ORDER BY p.user_code, p.session_id), coalesce(sum(p.n), 0)::integer
          INTO v_codes, v_keys, v_counts, deleted_clicks
          FROM (SELECT del.user_code, del.session_id, count(*)::integer AS n FROM del GROUP BY 1, 2) AS p;
        UPDATE analytics_sessions AS s SET clicks = greatest(s.clicks - d.n, 0)
          FROM (SELECT * FROM unnest(v_codes, v_keys, v_counts) AS u(user_code, session_id, n)) AS d
         WHERE s.user_code = d.user_code AND s.session_id = d.session_id AND s.last_seen >= p_before;
    END IF;

    -- sessions that ended before the cutoff, once their page views and clicks are gone
    -- (so that ON DELETE CASCADE never deletes uncounted rows beyond the batch size)
    SELECT array_agg(x.user_code), array_agg(x.session_id) INTO v_codes, v_keys
      FROM (SELECT s.user_code, s.session_id FROM analytics_sessions AS s
             WHERE s.first_seen < p_before AND s.last_seen < p_before
               AND NOT EXISTS (SELECT 1 FROM analytics_page_views AS v
                                WHERE v.user_code = s.user_code AND v.session_id = s.session_id)
               AND NOT EXISTS (SELECT 1 FROM analytics_clicks AS c
                                WHERE c.user_code = s.user_code AND c.session_id = s.session_id)
             ORDER BY s.first_seen, s.user_code, s.session_id LIMIT p_batch_size) AS x;
    deleted_sessions := 0;
    IF v_codes IS NOT NULL THEN
        WITH del AS (
            DELETE FROM analytics_sessions AS s
             WHERE (s.user_code, s.session_id) IN (SELECT u.c, u.k FROM unnest(v_codes, v_keys) AS u(c, k))
               AND s.last_seen < p_before
            RETURNING 1
        )
        SELECT count(*)::integer INTO deleted_sessions FROM del;
    END IF;

    RETURN NEXT;
END
$fn$;
