-- Refresh every materialized view registered in trackschema.matview_refreshes, one view
-- per transaction, and record when each was refreshed.
--
-- A populated view is refreshed CONCURRENTLY: it takes EXCLUSIVE on the view (readers keep
-- reading the old contents; only another refresh waits) and needs a unique index on
-- plain columns covering all rows. A view that was never populated gets a plain REFRESH
-- (nobody can read it yet anyway). `refreshed_at` is when the refresh started: the data
-- is at least that fresh. A view refreshed more recently than p_if_older_than is skipped.
-- One view's failure is recorded on its row and does not stop the others; a cancel
-- (statement_timeout) is recorded and ends the run.
--
-- p_record_run: record the run in trackschema.job_runs under the job's advisory lock
-- (job 'refresh-matviews'), and raise at the end when a view failed. This is what
-- pg_cron calls. `trackschema jobs run refresh-matviews` records the run itself and passes
-- false. p_result returns {"refreshed": {...}, "skipped": {...}, "failed": {...}}.
-- Call it at top level (not inside BEGIN ... COMMIT): it commits after each view.
CREATE PROCEDURE trackschema.refresh_matviews(
    p_if_older_than interval DEFAULT NULL,
    p_record_run boolean DEFAULT true,
    INOUT p_result jsonb DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v record;
    v_run_id bigint;
    v_started timestamptz;
    v_mode text;
    v_error text;
    v_state text;
    v_name text;
    v_refreshed jsonb := '{}'::jsonb;
    v_skipped jsonb := '{}'::jsonb;
    v_failed jsonb := '{}'::jsonb;
BEGIN
    IF p_record_run THEN
        v_run_id := trackschema.job_run_begin('refresh-matviews',
            jsonb_build_object('if_older_than', p_if_older_than::text, 'via', 'sql'));
        COMMIT;
    END IF;

    FOR v IN
        SELECT r.schema_name, r.view_name, r.refreshed_at, c.oid AS relid, c.relispopulated
          FROM trackschema.matview_refreshes r
          LEFT JOIN pg_namespace n ON n.nspname = r.schema_name
          LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.view_name AND c.relkind = 'm'
         ORDER BY r.refresh_order, r.schema_name, r.view_name
    LOOP
        v_name := format('%I.%I', v.schema_name, v.view_name);
        v_error := NULL;
        v_state := NULL;
        IF v.relid IS NULL THEN
            v_state := '42P01';
            v_error := 'materialized view ' || v_name || ' does not exist';
        ELSIF p_if_older_than IS NOT NULL AND v.relispopulated AND v.refreshed_at IS NOT NULL
              AND v.refreshed_at > clock_timestamp() - p_if_older_than THEN
            v_skipped := v_skipped || jsonb_build_object(v_name, jsonb_build_object(
                'age_seconds', round(extract(epoch FROM clock_timestamp() - v.refreshed_at)::numeric, 3)));
            CONTINUE;
        ELSE
            v_mode := CASE WHEN v.relispopulated THEN 'concurrently' ELSE 'full' END;
            v_started := clock_timestamp();
            BEGIN
                IF v.relispopulated THEN
                    EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I.%I', v.schema_name, v.view_name);
                ELSE
                    EXECUTE format('REFRESH MATERIALIZED VIEW %I.%I', v.schema_name, v.view_name);
                END IF;
            EXCEPTION WHEN query_canceled OR others THEN
                GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            END;
        END IF;

        IF v_state IS NULL THEN
            UPDATE trackschema.matview_refreshes
               SET refreshed_at = v_started,
                   refresh_seconds = extract(epoch FROM clock_timestamp() - v_started),
                   refresh_mode = v_mode,
                   last_error = NULL, last_error_at = NULL
             WHERE schema_name = v.schema_name AND view_name = v.view_name;
            v_refreshed := v_refreshed || jsonb_build_object(v_name, jsonb_build_object(
                'mode', v_mode, 'seconds', round(extract(epoch FROM clock_timestamp() - v_started)::numeric, 3)));
        ELSE
            UPDATE trackschema.matview_refreshes
               SET last_error = v_state || ': ' || v_error, last_error_at = clock_timestamp()
             WHERE schema_name = v.schema_name AND view_name = v.view_name;
            v_failed := v_failed || jsonb_build_object(v_name, v_state || ': ' || v_error);
        END IF;
        COMMIT;
        EXIT WHEN v_state = '57014';
    END LOOP;

    p_result := jsonb_build_object('refreshed', v_refreshed, 'skipped', v_skipped, 'failed', v_failed);
    IF p_record_run THEN
        PERFORM trackschema.job_run_end(v_run_id,
            CASE WHEN v_failed = '{}'::jsonb THEN 'succeeded' ELSE 'failed' END,
            p_result,
            CASE WHEN v_failed = '{}'::jsonb THEN NULL ELSE 'views failed: ' || v_failed::text END);
        COMMIT;
        IF v_failed <> '{}'::jsonb THEN
            RAISE EXCEPTION 'refresh-matviews: views failed: %', v_failed::text;
        END IF;
    END IF;
END
$$;
