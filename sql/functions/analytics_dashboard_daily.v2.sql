-- analytics_dashboard_daily(user_code, from, to), version 2: the Citus variant (revision
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
-- analytics_dashboard_daily(user_code, from, to): a user's stats per UTC day, real time:
-- closed, aggregated days from analytics_daily_user_stats, the other days (today above all)
-- from the raw tables, computed as analytics_daily_stats_raw does. `source` says which.
-- Days without any activity have no row.
-- SECURITY INVOKER: row-level security of the caller applies to both sources.
-- PL/pgSQL so that the query plan is cached per session: planned afresh on every call (as
-- a SQL function would be, or an inlined one by a client that does not prepare) it costs
-- several times its execution. The raw part is written out rather than calling
-- analytics_daily_stats_raw, which would not be inlined with sub-selects as arguments.
CREATE OR REPLACE FUNCTION analytics_dashboard_daily(p_user_code text, p_from date, p_to date)
RETURNS TABLE (day date, total_sessions bigint, total_page_views bigint, total_clicks bigint,
               unique_share_codes text[], source text)
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
        ), open_days AS MATERIALIZED (
            SELECT cov.day FROM cov WHERE NOT cov.materialized
        ), raw_range AS MATERIALIZED (
            SELECT min(o.day)::timestamp AT TIME ZONE 'UTC' AS lo,
                   (max(o.day) + 1)::timestamp AT TIME ZONE 'UTC' AS hi
              FROM open_days AS o
        ), x AS (
            SELECT (s.first_seen AT TIME ZONE 'UTC')::date AS day, s.share_code, 1 AS sessions, 0 AS views, 0 AS clicks
              FROM analytics_sessions AS s
             WHERE s.user_code = p_user_code
               AND s.first_seen >= (SELECT lo FROM raw_range) AND s.first_seen < (SELECT hi FROM raw_range)
            UNION ALL
            SELECT (v.viewed_at AT TIME ZONE 'UTC')::date, v.share_code, 0, 1, 0
              FROM analytics_page_views AS v
             WHERE v.user_code = p_user_code
               AND v.viewed_at >= (SELECT lo FROM raw_range) AND v.viewed_at < (SELECT hi FROM raw_range)
            UNION ALL
            SELECT (c.clicked_at AT TIME ZONE 'UTC')::date, c.share_code, 0, 0, 1
              FROM analytics_clicks AS c
             WHERE c.user_code = p_user_code
               AND c.clicked_at >= (SELECT lo FROM raw_range) AND c.clicked_at < (SELECT hi FROM raw_range)
        ), g AS (
            SELECT x.day, x.share_code, sum(x.sessions) AS sessions, sum(x.views) AS views, sum(x.clicks) AS clicks
              FROM x
             WHERE x.day IN (SELECT o.day FROM open_days AS o)
             GROUP BY x.day, x.share_code
        )
        SELECT u.date, u.total_sessions::bigint, u.total_page_views::bigint, u.total_clicks::bigint,
               u.unique_share_codes, 'rollup'::text
          FROM analytics_daily_user_stats AS u
         WHERE u.user_code = p_user_code
           AND u.date >= p_from AND u.date <= p_to
           AND u.date IN (SELECT cov.day FROM cov WHERE cov.materialized)
        UNION ALL
        SELECT g.day, sum(g.sessions)::bigint, sum(g.views)::bigint, sum(g.clicks)::bigint,
               coalesce(array_agg(g.share_code ORDER BY g.share_code) FILTER (WHERE g.share_code IS NOT NULL), '{}'::text[]),
               'raw'::text
          FROM g
         GROUP BY g.day
         ORDER BY 1;
END
$fn$;
