-- analytics_daily_stats_raw(user_code, from, to): one user's per-day stats computed from the
-- raw tables only (the same numbers aggregate_analytics_daily stores in
-- analytics_daily_user_stats). Used for the days the roll-ups do not cover, and as the
-- baseline the roll-ups are checked and benchmarked against. NULL bounds give no rows.
CREATE FUNCTION analytics_daily_stats_raw(p_user_code text, p_from date, p_to date)
RETURNS TABLE (day date, total_sessions bigint, total_page_views bigint, total_clicks bigint, unique_share_codes text[])
LANGUAGE sql
STABLE
AS $fn$
    WITH x AS (
        SELECT (s.first_seen AT TIME ZONE 'UTC')::date AS day, s.share_code, 1 AS sessions, 0 AS views, 0 AS clicks
          FROM analytics_sessions AS s
         WHERE s.user_code = p_user_code
           AND s.first_seen >= p_from::timestamp AT TIME ZONE 'UTC'
           AND s.first_seen < (p_to + 1)::timestamp AT TIME ZONE 'UTC'
        UNION ALL
        SELECT (v.viewed_at AT TIME ZONE 'UTC')::date, v.share_code, 0, 1, 0
          FROM analytics_page_views AS v
         WHERE v.user_code = p_user_code
           AND v.viewed_at >= p_from::timestamp AT TIME ZONE 'UTC'
           AND v.viewed_at < (p_to + 1)::timestamp AT TIME ZONE 'UTC'
        UNION ALL
        SELECT (c.clicked_at AT TIME ZONE 'UTC')::date, c.share_code, 0, 0, 1
          FROM analytics_clicks AS c
         WHERE c.user_code = p_user_code
           AND c.clicked_at >= p_from::timestamp AT TIME ZONE 'UTC'
           AND c.clicked_at < (p_to + 1)::timestamp AT TIME ZONE 'UTC'
    ), g AS (
        SELECT x.day, x.share_code, sum(x.sessions) AS sessions, sum(x.views) AS views, sum(x.clicks) AS clicks
          FROM x
         GROUP BY x.day, x.share_code
    )
    SELECT g.day, sum(g.sessions)::bigint, sum(g.views)::bigint, sum(g.clicks)::bigint,
           coalesce(array_agg(g.share_code ORDER BY g.share_code) FILTER (WHERE g.share_code IS NOT NULL), '{}'::text[])
      FROM g
     GROUP BY g.day
     ORDER BY g.day
$fn$;
