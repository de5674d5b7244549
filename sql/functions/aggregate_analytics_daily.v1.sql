-- aggregate_analytics_daily(day): rebuild the four daily roll-ups of one UTC day from the raw
-- tables. Idempotent: a second run over unchanged raw rows changes nothing (rows whose values
-- are equal are not rewritten, so even aggregated_at stays). Roll-up rows of the day that no
-- longer have raw rows behind them are deleted.
--
-- Semantics: a session counts on the UTC day of its first_seen, a page view on that of
-- viewed_at, a click on that of clicked_at; rows without a user_code are not rolled up.
-- unique_share_codes lists the day's share codes of the user across sessions, page views
-- and clicks. A click target's category is the most frequent one of the day.
--
-- Concurrency: one run per day at a time (transaction advisory lock). The day's dirty
-- markers are deleted first; that DELETE waits for ingests that still hold a marker, and
-- the aggregation statement after it takes a fresh snapshot, so it sees their rows (see
-- trackschema.analytics_mark_days). Hence READ COMMITTED is required.
--
-- A day older than the retention horizon (trackschema.analytics_raw_horizon.purged_before)
-- that has been aggregated is final: its raw rows are gone, recomputing would wipe it.
CREATE FUNCTION aggregate_analytics_daily(p_day date)
RETURNS TABLE (
    agg_day        date,
    outcome        text,
    raw_sessions   bigint,
    raw_page_views bigint,
    raw_clicks     bigint,
    rows_written   integer,
    rows_deleted   integer
)
LANGUAGE plpgsql
VOLATILE
AS $fn$
DECLARE
    v_lo     timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    v_hi     timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
    v_purged timestamptz;
BEGIN
    IF p_day IS NULL THEN
        RAISE EXCEPTION 'aggregate_analytics_daily: the day must not be NULL';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'aggregate_analytics_daily must run at READ COMMITTED, not %',
                        current_setting('transaction_isolation')
            USING HINT = 'it needs a fresh snapshot after waiting for in-flight ingests';
    END IF;
    -- classid 0x74726B10: one aggregation of a given day at a time
    PERFORM pg_advisory_xact_lock(1953655568, p_day - DATE '2000-01-01');

    agg_day := p_day;
    SELECT h.purged_before INTO v_purged FROM trackschema.analytics_raw_horizon AS h;
    IF v_purged IS NOT NULL AND v_lo < v_purged
       AND EXISTS (SELECT 1 FROM trackschema.analytics_rollup_days AS r WHERE r.day = p_day) THEN
        DELETE FROM trackschema.analytics_dirty_days AS m WHERE m.day = p_day;
        outcome := 'final';
        raw_sessions := 0; raw_page_views := 0; raw_clicks := 0; rows_written := 0; rows_deleted := 0;
        RETURN NEXT;
        RETURN;
    END IF;

    DELETE FROM trackschema.analytics_dirty_days AS m WHERE m.day = p_day;

    WITH pv AS MATERIALIZED (
        SELECT v.user_code, v.share_code, v.page_type, count(*)::integer AS n
          FROM analytics_page_views AS v
         WHERE v.viewed_at >= v_lo AND v.viewed_at < v_hi AND v.user_code IS NOT NULL
         GROUP BY v.user_code, v.share_code, v.page_type
    ), ck_cat AS MATERIALIZED (
        SELECT c.user_code, c.share_code, c.click_target, c.click_category, count(*)::integer AS n
          FROM analytics_clicks AS c
         WHERE c.clicked_at >= v_lo AND c.clicked_at < v_hi AND c.user_code IS NOT NULL
         GROUP BY c.user_code, c.share_code, c.click_target, c.click_category
    ), ck AS MATERIALIZED (
        -- the most frequent category (as mode() would pick it), without sorting every click
        SELECT k.user_code, k.share_code, k.click_target,
               (array_agg(k.click_category ORDER BY k.n DESC, k.click_category)
                    FILTER (WHERE k.click_category IS NOT NULL))[1] AS click_category,
               sum(k.n)::integer AS n
          FROM ck_cat AS k
         GROUP BY k.user_code, k.share_code, k.click_target
    ), ss AS MATERIALIZED (
        SELECT s.user_code, s.share_code, count(*)::integer AS n
          FROM analytics_sessions AS s
         WHERE s.first_seen >= v_lo AND s.first_seen < v_hi AND s.user_code IS NOT NULL
         GROUP BY s.user_code, s.share_code
    ), grp AS MATERIALIZED (
        SELECT x.user_code, x.share_code,
               sum(x.sessions)::integer AS sessions, sum(x.views)::integer AS views, sum(x.clicks)::integer AS clicks
          FROM (SELECT user_code, share_code, n AS sessions, 0 AS views, 0 AS clicks FROM ss
                UNION ALL
                SELECT user_code, share_code, 0, n, 0 FROM pv
                UNION ALL
                SELECT user_code, share_code, 0, 0, n FROM ck) AS x
         GROUP BY x.user_code, x.share_code
    ), usr AS MATERIALIZED (
        SELECT g.user_code, sum(g.sessions)::integer AS sessions, sum(g.views)::integer AS views,
               sum(g.clicks)::integer AS clicks,
               coalesce(array_agg(g.share_code ORDER BY g.share_code) FILTER (WHERE g.share_code IS NOT NULL),
                        '{}'::text[]) AS share_codes
          FROM grp AS g
         GROUP BY g.user_code
    ), w_user AS (
        INSERT INTO analytics_daily_user_stats AS t
               (user_code, date, total_sessions, total_page_views, total_clicks, unique_share_codes, aggregated_at)
        SELECT u.user_code, p_day, u.sessions, u.views, u.clicks, u.share_codes, now() FROM usr AS u
        ON CONFLICT (user_code, date) DO UPDATE
           SET total_sessions = EXCLUDED.total_sessions, total_page_views = EXCLUDED.total_page_views,
               total_clicks = EXCLUDED.total_clicks, unique_share_codes = EXCLUDED.unique_share_codes,
               aggregated_at = EXCLUDED.aggregated_at
         WHERE (t.total_sessions, t.total_page_views, t.total_clicks, t.unique_share_codes)
               IS DISTINCT FROM (EXCLUDED.total_sessions, EXCLUDED.total_page_views, EXCLUDED.total_clicks,
                                 EXCLUDED.unique_share_codes)
        RETURNING 1
    ), d_user AS (
        DELETE FROM analytics_daily_user_stats AS t
         WHERE t.date = p_day AND NOT EXISTS (SELECT 1 FROM usr AS u WHERE u.user_code = t.user_code)
        RETURNING 1
    ), w_group AS (
        INSERT INTO analytics_daily_group_stats AS t
               (user_code, share_code, date, total_sessions, total_page_views, total_clicks, aggregated_at)
        SELECT g.user_code, g.share_code, p_day, g.sessions, g.views, g.clicks, now() FROM grp AS g
        ON CONFLICT (user_code, share_code, date) DO UPDATE
           SET total_sessions = EXCLUDED.total_sessions, total_page_views = EXCLUDED.total_page_views,
               total_clicks = EXCLUDED.total_clicks, aggregated_at = EXCLUDED.aggregated_at
         WHERE (t.total_sessions, t.total_page_views, t.total_clicks)
               IS DISTINCT FROM (EXCLUDED.total_sessions, EXCLUDED.total_page_views, EXCLUDED.total_clicks)
        RETURNING 1
    ), d_group AS (
        DELETE FROM analytics_daily_group_stats AS t
         WHERE t.date = p_day
           AND NOT EXISTS (SELECT 1 FROM grp AS g
                            WHERE g.user_code = t.user_code AND g.share_code IS NOT DISTINCT FROM t.share_code)
        RETURNING 1
    ), w_click AS (
        INSERT INTO analytics_daily_click_targets AS t
               (user_code, share_code, date, click_target, click_category, click_count, aggregated_at)
        SELECT c.user_code, c.share_code, p_day, c.click_target, c.click_category, c.n, now() FROM ck AS c
        ON CONFLICT (user_code, share_code, date, click_target) DO UPDATE
           SET click_category = EXCLUDED.click_category, click_count = EXCLUDED.click_count,
               aggregated_at = EXCLUDED.aggregated_at
         WHERE (t.click_category, t.click_count) IS DISTINCT FROM (EXCLUDED.click_category, EXCLUDED.click_count)
        RETURNING 1
    ), d_click AS (
        DELETE FROM analytics_daily_click_targets AS t
         WHERE t.date = p_day
           AND NOT EXISTS (SELECT 1 FROM ck AS c
                            WHERE c.user_code = t.user_code AND c.share_code IS NOT DISTINCT FROM t.share_code
                              AND c.click_target = t.click_target)
        RETURNING 1
    ), w_page AS (
        INSERT INTO analytics_daily_page_stats AS t
               (user_code, share_code, date, page_type, view_count, aggregated_at)
        SELECT v.user_code, v.share_code, p_day, v.page_type, v.n, now() FROM pv AS v
        ON CONFLICT (user_code, share_code, date, page_type) DO UPDATE
           SET view_count = EXCLUDED.view_count, aggregated_at = EXCLUDED.aggregated_at
         WHERE t.view_count IS DISTINCT FROM EXCLUDED.view_count
        RETURNING 1
    ), d_page AS (
        DELETE FROM analytics_daily_page_stats AS t
         WHERE t.date = p_day
           AND NOT EXISTS (SELECT 1 FROM pv AS v
                            WHERE v.user_code = t.user_code AND v.share_code IS NOT DISTINCT FROM t.share_code
                              AND v.page_type = t.page_type)
        RETURNING 1
    )
    SELECT coalesce((SELECT sum(n) FROM ss), 0),
           coalesce((SELECT sum(n) FROM pv), 0),
           coalesce((SELECT sum(n) FROM ck), 0),
           (SELECT count(*) FROM w_user) + (SELECT count(*) FROM w_group)
             + (SELECT count(*) FROM w_click) + (SELECT count(*) FROM w_page),
           (SELECT count(*) FROM d_user) + (SELECT count(*) FROM d_group)
             + (SELECT count(*) FROM d_click) + (SELECT count(*) FROM d_page)
      INTO raw_sessions, raw_page_views, raw_clicks, rows_written, rows_deleted;

    INSERT INTO trackschema.analytics_rollup_days AS r (day, aggregated_at, sessions, page_views, clicks)
    VALUES (p_day, clock_timestamp(), raw_sessions, raw_page_views, raw_clicks)
    ON CONFLICT (day) DO UPDATE
       SET aggregated_at = EXCLUDED.aggregated_at, sessions = EXCLUDED.sessions,
           page_views = EXCLUDED.page_views, clicks = EXCLUDED.clicks;

    outcome := 'aggregated';
    RETURN NEXT;
END
$fn$;
