-- analytics_rollup_coverage(from, to): every UTC day of the range and whether dashboards read
-- it from the roll-ups (materialized) or from the raw tables.
-- A day is materialized when it is closed (before today, UTC) and was aggregated after it
-- ended; today, future days and days not aggregated since they closed come from raw rows.
-- Late events on an aggregated day show up after the next aggregate-daily run (as with
-- TimescaleDB's real-time aggregates, invalidated ranges are not read from raw).
CREATE FUNCTION analytics_rollup_coverage(p_from date, p_to date)
RETURNS TABLE (day date, materialized boolean)
LANGUAGE sql
STABLE
AS $fn$
    SELECT g.day::date,
           EXISTS (SELECT 1
                     FROM trackschema.analytics_rollup_days AS r
                    WHERE r.day = g.day::date
                      AND r.day < (now() AT TIME ZONE 'UTC')::date
                      AND r.aggregated_at >= (r.day + 1)::timestamp AT TIME ZONE 'UTC')
      FROM generate_series(p_from::timestamp, p_to::timestamp, interval '1 day') AS g(day)
$fn$;
