-- analytics_dashboard_clicks(user_code, from, to), version 2: the Citus variant (revision
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
-- analytics_dashboard_clicks(user_code, from, to): a user's clicks per target over a range of
-- UTC days, real time (roll-ups for materialized days, raw rows for the others). The category
-- shown is the one with the most clicks of that target in the range.
-- PL/pgSQL so that the query plan is cached per session (see analytics_dashboard_daily).
CREATE OR REPLACE FUNCTION analytics_dashboard_clicks(p_user_code text, p_from date, p_to date)
RETURNS TABLE (click_target text, click_category text, click_count bigint)
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
        ), x AS (
            SELECT t.click_target, t.click_category, t.click_count AS n
              FROM analytics_daily_click_targets AS t
             WHERE t.user_code = p_user_code
               AND t.date >= p_from AND t.date <= p_to
               AND t.date IN (SELECT cov.day FROM cov WHERE cov.materialized)
            UNION ALL
            SELECT c.click_target, c.click_category, 1
              FROM analytics_clicks AS c
             WHERE c.user_code = p_user_code
               AND c.clicked_at >= (SELECT lo FROM raw_range) AND c.clicked_at < (SELECT hi FROM raw_range)
               AND (c.clicked_at AT TIME ZONE 'UTC')::date IN (SELECT cov.day FROM cov WHERE NOT cov.materialized)
        ), per_category AS (
            SELECT x.click_target, x.click_category, sum(x.n) AS n FROM x GROUP BY x.click_target, x.click_category
        )
        SELECT p.click_target,
               (array_agg(p.click_category ORDER BY p.n DESC, p.click_category NULLS LAST))[1],
               sum(p.n)::bigint
          FROM per_category AS p
         GROUP BY p.click_target
         ORDER BY 3 DESC, 1;
END
$fn$;
