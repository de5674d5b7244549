-- analytics_dashboard_daily(user_code, from, to): a user's stats per UTC day, real time:
-- closed, aggregated days from analytics_daily_user_stats, the other days (today above all)
-- from the raw tables. `source` says which. Days without any activity have no row.
-- SECURITY INVOKER: row-level security of the caller applies to both sources.
CREATE FUNCTION analytics_dashboard_daily(p_user_code text, p_from date, p_to date)
RETURNS TABLE (day date, total_sessions bigint, total_page_views bigint, total_clicks bigint,
               unique_share_codes text[], source text)
LANGUAGE sql
STABLE
AS $fn$
    WITH cov AS MATERIALIZED (
        SELECT c.day, c.materialized FROM analytics_rollup_coverage(p_from, p_to) AS c
    )
    SELECT u.date, u.total_sessions::bigint, u.total_page_views::bigint, u.total_clicks::bigint,
           u.unique_share_codes, 'rollup'::text
      FROM analytics_daily_user_stats AS u
     WHERE u.user_code = p_user_code
       AND u.date >= p_from AND u.date <= p_to
       AND u.date IN (SELECT cov.day FROM cov WHERE cov.materialized)
    UNION ALL
    SELECT r.day, r.total_sessions, r.total_page_views, r.total_clicks, r.unique_share_codes, 'raw'::text
      FROM analytics_daily_stats_raw(p_user_code,
                                     (SELECT min(cov.day) FROM cov WHERE NOT cov.materialized),
                                     (SELECT max(cov.day) FROM cov WHERE NOT cov.materialized)) AS r
     WHERE r.day IN (SELECT cov.day FROM cov WHERE NOT cov.materialized)
     ORDER BY 1
$fn$;
