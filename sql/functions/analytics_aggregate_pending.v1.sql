-- The `aggregate-daily` job as one SQL command, for pg_cron:
--   CALL trackschema.analytics_aggregate_pending();
-- Aggregates every UTC day that has a dirty marker (raw rows written or deleted since its
-- last aggregation) before p_before (default: today, UTC), oldest first, one day per
-- transaction, through aggregate_analytics_daily(day). `trackschema jobs run
-- aggregate-daily` with no --date/--since calls it too (rollups.aggregate_pending).
--
-- p_record_run: record the run in trackschema.job_runs under the job's advisory lock (a
-- run of the job already under way, from the CLI or from pg_cron, makes this one fail
-- with lock_not_available and change nothing). A day that fails is recorded in the run's
-- error, the days before it stay aggregated, the run is marked failed and the error is
-- raised (so cron.job_run_details shows it too); its marker stays, so the next run tries
-- it again. p_result returns {"mode": "dirty", "aggregated": n, "final": [days],
-- "days": [{day, outcome, raw_sessions, raw_page_views, raw_clicks, rows_written,
-- rows_deleted}]}, the shape the CLI job reports.
-- Call it at top level (not inside BEGIN ... COMMIT): it commits after each day.
CREATE PROCEDURE trackschema.analytics_aggregate_pending(
    p_before date DEFAULT NULL,
    p_record_run boolean DEFAULT true,
    INOUT p_result jsonb DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_run_id bigint;
    v_day date;
    v_row record;
    v_days jsonb := '[]'::jsonb;
    v_error text;
    v_state text;
BEGIN
    IF p_record_run THEN
        v_run_id := trackschema.job_run_begin('aggregate-daily', jsonb_build_object('before', p_before, 'via', 'sql'));
        COMMIT;
    END IF;

    FOR v_day IN
        SELECT DISTINCT m.day FROM trackschema.analytics_dirty_days AS m
         WHERE m.day < coalesce(p_before, (now() AT TIME ZONE 'UTC')::date)
         ORDER BY m.day
    LOOP
        BEGIN
            SELECT * INTO v_row FROM aggregate_analytics_daily(v_day);
            v_days := v_days || jsonb_build_object(
                'day', v_row.agg_day, 'outcome', v_row.outcome, 'raw_sessions', v_row.raw_sessions,
                'raw_page_views', v_row.raw_page_views, 'raw_clicks', v_row.raw_clicks,
                'rows_written', v_row.rows_written, 'rows_deleted', v_row.rows_deleted);
        EXCEPTION WHEN query_canceled OR others THEN
            GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            v_error := format('day %s: %s', v_day, v_error);
        END;
        EXIT WHEN v_state IS NOT NULL;
        COMMIT;
    END LOOP;

    p_result := jsonb_build_object(
        'mode', 'dirty',
        'aggregated', (SELECT count(*) FROM jsonb_array_elements(v_days) AS d WHERE d ->> 'outcome' = 'aggregated'),
        'final', (SELECT coalesce(jsonb_agg(d -> 'day'), '[]'::jsonb) FROM jsonb_array_elements(v_days) AS d WHERE d ->> 'outcome' = 'final'),
        'days', v_days);
    IF p_record_run THEN
        PERFORM trackschema.job_run_end(v_run_id,
            CASE WHEN v_state IS NULL THEN 'succeeded' ELSE 'failed' END,
            p_result,
            CASE WHEN v_state IS NULL THEN NULL ELSE v_state || ': ' || v_error END);
        COMMIT;
    END IF;
    IF v_state IS NOT NULL THEN
        RAISE EXCEPTION 'aggregate-daily failed: %', v_error USING ERRCODE = v_state;
    END IF;
END
$$;
