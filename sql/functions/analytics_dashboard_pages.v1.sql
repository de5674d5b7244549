-- analytics_dashboard_pages(user_code, from, to): a user's page views per page type over a
-- range of UTC days, real time (roll-ups for materialized days, raw rows for the others).
-- PL/pgSQL so that the query plan is cached per session (see analytics_dashboard_daily).
CREATE FUNCTION analytics_dashboard_pages(p_user_code text, p_from date, p_to date)
RETURNS TABLE (page_type text, view_count bigint)
LANGUAGE plpgsql
STABLE
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH cov AS MATERIALIZED (
            SELECT c.day, c.materialized FROM analytics_rollup_coverage(p_from, p_to) AS c
        ), raw_range AS MATERIALIZED (
            SELECT min(cov.day)::timestamp AT TIME ZONE 'UTC' AS lo,
                   (max(cov.day) + 1)::timestamp AT TIME ZONE 'UTC' AS hi
              FROM cov WHERE NOT cov.materialized
        )
        SELECT x.page_type, sum(x.n)::bigint
          FROM (SELECT p.page_type, p.view_count AS n
                  FROM analytics_daily_page_stats AS p
                 WHERE p.user_code = p_user_code
                   AND p.date >= p_from AND p.date <= p_to
                   AND p.date IN (SELECT cov.day FROM cov WHERE cov.materialized)
                UNION ALL
                SELECT v.page_type, 1
                  FROM analytics_page_views AS v
                 WHERE v.user_code = p_user_code
                   AND v.viewed_at >= (SELECT lo FROM raw_range) AND v.viewed_at < (SELECT hi FROM raw_range)
                   AND (v.viewed_at AT TIME ZONE 'UTC')::date IN (SELECT cov.day FROM cov WHERE NOT cov.materialized)
               ) AS x
         GROUP BY x.page_type
         ORDER BY 2 DESC, 1;
END
$fn$;
