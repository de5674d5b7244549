-- The `retention` job as one SQL command, for pg_cron and for `trackschema jobs run
-- retention` alike:
--   CALL trackschema.analytics_retention();            -- 90 days, batches of 10,000
--   CALL trackschema.analytics_retention(30, 5000);
-- Deletes raw analytics rows older than p_days days in batches; roll-ups are kept. The
-- cutoff is UTC midnight p_days days before today (whole days go). Steps, each in its own
-- transaction, so a run can stop anywhere and be run again:
--   1. raise the ingest horizon (accept_from) to the cutoff under the horizon lock that
--      in-flight analytics_ingest calls hold shared: once it is granted, no batch can still
--      add events older than the cutoff;
--   2. aggregate every dirty day before the cutoff (one day per transaction), so the
--      roll-ups of the days about to lose their raw rows are complete;
--   3. record the cutoff as purged_before: aggregated days before it are final from now
--      on (aggregate_analytics_daily leaves them alone instead of wiping them);
--   4. analytics_purge_raw_batch(cutoff, p_batch_size) until nothing is left (page views,
--      clicks, then sessions that ended before the cutoff), a transaction per batch;
--   5. ingest rejects older than the cutoff, in batches.
--
-- p_record_run: record the run in trackschema.job_runs under the job's advisory lock (a
-- run already under way makes this one fail with lock_not_available and change nothing).
-- A failing step ends the run: what was committed stays, the run is marked failed with
-- the error, and the error is raised (cron.job_run_details shows it). p_result returns
-- {"cutoff", "aggregated_days", "deleted": {page_views, clicks, sessions, rejects},
-- "batches"}. Call it at top level (not inside BEGIN ... COMMIT): it commits.
CREATE PROCEDURE trackschema.analytics_retention(
    p_days integer DEFAULT 90,
    p_batch_size integer DEFAULT 10000,
    p_record_run boolean DEFAULT true,
    INOUT p_result jsonb DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_run_id bigint;
    v_cutoff timestamptz;
    v_day date;
    v_row record;
    v_aggregated jsonb := '[]'::jsonb;
    v_page_views bigint := 0;
    v_clicks bigint := 0;
    v_sessions bigint := 0;
    v_rejects bigint := 0;
    v_batches integer := 0;
    v_deleted bigint;
    v_step text;
    v_error text;
    v_state text;
BEGIN
    IF p_days IS NULL OR p_days < 1 OR p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION 'analytics_retention: days and batch size must be positive integers (got %, %)', p_days, p_batch_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_record_run THEN
        v_run_id := trackschema.job_run_begin('retention',
            jsonb_build_object('days', p_days, 'batch_size', p_batch_size, 'via', 'sql'));
        COMMIT;
    END IF;
    v_cutoff := ((now() AT TIME ZONE 'UTC')::date - p_days)::timestamp AT TIME ZONE 'UTC';

    <<steps>>
    BEGIN
        -- 1. the ingest horizon
        BEGIN
            v_step := 'raise the ingest horizon';
            PERFORM pg_advisory_xact_lock(1953655569, 0);  -- 0x74726B11, the horizon lock analytics_ingest holds shared
            UPDATE trackschema.analytics_raw_horizon
               SET accept_from = greatest(coalesce(accept_from, v_cutoff), v_cutoff), changed_at = now();
        EXCEPTION WHEN query_canceled OR others THEN
            GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        END;
        EXIT steps WHEN v_state IS NOT NULL;
        COMMIT;

        -- 2. the dirty days before the cutoff
        FOR v_day IN
            SELECT DISTINCT m.day FROM trackschema.analytics_dirty_days AS m
             WHERE m.day < v_cutoff::date
             ORDER BY m.day
        LOOP
            BEGIN
                v_step := format('aggregate %s', v_day);
                SELECT * INTO v_row FROM aggregate_analytics_daily(v_day);
                v_aggregated := v_aggregated || to_jsonb(v_row.agg_day);
            EXCEPTION WHEN query_canceled OR others THEN
                GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            END;
            EXIT steps WHEN v_state IS NOT NULL;
            COMMIT;
        END LOOP;

        -- 3. the days before the cutoff are final
        BEGIN
            v_step := 'record purged_before';
            UPDATE trackschema.analytics_raw_horizon
               SET purged_before = greatest(coalesce(purged_before, v_cutoff), v_cutoff), changed_at = now();
        EXCEPTION WHEN query_canceled OR others THEN
            GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        END;
        EXIT steps WHEN v_state IS NOT NULL;
        COMMIT;

        -- 4. the raw rows, a batch per transaction
        LOOP
            BEGIN
                v_step := 'purge raw rows';
                SELECT * INTO v_row FROM analytics_purge_raw_batch(v_cutoff, p_batch_size);
            EXCEPTION WHEN query_canceled OR others THEN
                GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            END;
            EXIT steps WHEN v_state IS NOT NULL;
            EXIT WHEN coalesce(v_row.deleted_page_views, 0) = 0 AND coalesce(v_row.deleted_clicks, 0) = 0
                  AND coalesce(v_row.deleted_sessions, 0) = 0;
            v_batches := v_batches + 1;
            v_page_views := v_page_views + v_row.deleted_page_views;
            v_clicks := v_clicks + v_row.deleted_clicks;
            v_sessions := v_sessions + v_row.deleted_sessions;
            COMMIT;
        END LOOP;

        -- 5. old ingest rejects
        LOOP
            BEGIN
                v_step := 'purge ingest rejects';
                DELETE FROM trackschema.analytics_ingest_rejects
                 WHERE id IN (SELECT r.id FROM trackschema.analytics_ingest_rejects AS r
                               WHERE r.rejected_at < v_cutoff ORDER BY r.id LIMIT p_batch_size);
                GET DIAGNOSTICS v_deleted = ROW_COUNT;
            EXCEPTION WHEN query_canceled OR others THEN
                GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            END;
            EXIT steps WHEN v_state IS NOT NULL;
            v_rejects := v_rejects + v_deleted;
            COMMIT;
            EXIT WHEN v_deleted < p_batch_size;
        END LOOP;
    END steps;

    p_result := jsonb_build_object(
        'cutoff', v_cutoff,
        'aggregated_days', v_aggregated,
        'deleted', jsonb_build_object('page_views', v_page_views, 'clicks', v_clicks, 'sessions', v_sessions, 'rejects', v_rejects),
        'batches', v_batches);
    IF v_state IS NOT NULL THEN
        v_error := format('%s: %s', v_step, v_error);
    END IF;
    IF p_record_run THEN
        PERFORM trackschema.job_run_end(v_run_id,
            CASE WHEN v_state IS NULL THEN 'succeeded' ELSE 'failed' END,
            p_result,
            CASE WHEN v_state IS NULL THEN NULL ELSE v_state || ': ' || v_error END);
        COMMIT;
    END IF;
    IF v_state IS NOT NULL THEN
        RAISE EXCEPTION 'retention failed: %', v_error USING ERRCODE = v_state;
    END IF;
END
$$;
