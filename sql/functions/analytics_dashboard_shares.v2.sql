-- analytics_dashboard_shares(user_code, from, to), version 2: the Citus variant (revision
-- 0101_citus_analytics installs it on Citus only; its downgrade, and plain PostgreSQL, keep
-- version 1).
--
-- What changed from v1, and why: the query reads one user's shards only, so Citus sends it
-- whole to the worker, where analytics_rollup_coverage() would read the coordinator's
-- trackschema.analytics_rollup_days (an empty shell there, or no table at all). v2 asks the
-- coverage first, on the coordinator, into two arrays, and the query reads them
-- (unnest(v_days, v_materialized)). CREATE OR REPLACE: owner and grants kept. Nothing else
-- changed.
--
-- analytics_dashboard_shares(user_code, from, to): a user's sessions, page views and clicks per
-- share code over a range of UTC days, real time (roll-ups for materialized days, raw rows for
-- the others). A NULL share_code groups the traffic that came without one.
-- PL/pgSQL so that the query plan is cached per session (see analytics_dashboard_daily).
CREATE OR REPLACE FUNCTION analytics_dashboard_shares(p_user_code text, p_from date, p_to date)
RETURNS TABLE (share_code text, total_sessions bigint, total_page_views bigint, total_clicks bigint)
LANGUAGE plpgsql
STABLE
AS $fn$
#variable_conflict use_column
DECLARE
    v_days         date[];
    v_materialized boolean[];
BEGIN
    -- on the coordinator: trackschema.analytics_rollup_days is a coordinator table
    SELECT array_agg(c.day ORDER BY c.day), array_agg(c.materialized ORDER BY c.day) INTO v_days, v_materialized
      FROM analytics_rollup_coverage(p_from, p_to) AS c;
    RETURN QUERY
        WITH cov AS MATERIALIZED (
            SELECT c.day, c.materialized FROM unnest(v_days, v_materialized) AS c(day, materialized)
        ), raw_range AS MATERIALIZED (
            SELECT min(cov.day)::timestamp AT TIME ZONE 'UTC' AS lo,
                   (max(cov.day) + 1)::timestamp AT TIME ZONE 'UTC' AS hi
              FROM cov WHERE NOT cov.materialized
        ), open_days AS MATERIALIZED (
            SELECT cov.day FROM cov WHERE NOT cov.materialized
        )
        SELECT x.share_code, sum(x.sessions)::bigint, sum(x.views)::bigint, sum(x.clicks)::bigint
          FROM (SELECT g.share_code, g.total_sessions AS sessions, g.total_page_views AS views, g.total_clicks AS clicks
                  FROM analytics_daily_group_stats AS g
                 WHERE g.user_code = p_user_code
                   AND g.date >= p_from AND g.date <= p_to
                   AND g.date IN (SELECT cov.day FROM cov WHERE cov.materialized)
                UNION ALL
                SELECT s.share_code, 1, 0, 0
                  FROM analytics_sessions AS s
                 WHERE s.user_code = p_user_code
                   AND s.first_seen >= (SELECT lo FROM raw_range) AND s.first_seen < (SELECT hi FROM raw_range)
                   AND (s.first_seen AT TIME ZONE 'UTC')::date IN (SELECT day FROM open_days)
                UNION ALL
                SELECT v.share_code, 0, 1, 0
                  FROM analytics_page_views AS v
                 WHERE v.user_code = p_user_code
                   AND v.viewed_at >= (SELECT lo FROM raw_range) AND v.viewed_at < (SELECT hi FROM raw_range)
                   AND (v.viewed_at AT TIME ZONE 'UTC')::date IN (SELECT day FROM open_days)
                UNION ALL
                SELECT c.share_code, 0, 0, 1
                  FROM analytics_clicks AS c
                 WHERE c.user_code = p_user_code
                   AND c.clicked_at >= (SELECT lo FROM raw_range) AND c.clicked_at < (SELECT hi FROM raw_range)
                   AND (c.clicked_at AT TIME ZONE 'UTC')::date IN (SELECT day FROM open_days)
               ) AS x
         GROUP BY x.share_code
         ORDER BY 3 DESC, 1 NULLS LAST;
END
$fn$;
