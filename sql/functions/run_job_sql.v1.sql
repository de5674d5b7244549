-- Run a job whose work is one SQL command (a function call such as
-- `SELECT aggregate_analytics_daily(...)`), recorded and locked like `trackschema jobs run`:
--   CALL trackschema.run_job_sql('aggregate-daily', 'SELECT aggregate_analytics_daily(current_date - 1)');
-- The 'running' row is committed before the command starts; the command runs in its own
-- transaction (it must not COMMIT itself); its failure is recorded as 'failed' and then
-- re-raised, so pg_cron's cron.job_run_details shows it too. Call it at top level (not
-- inside BEGIN ... COMMIT): it commits.
CREATE PROCEDURE trackschema.run_job_sql(p_job text, p_command text, p_params jsonb DEFAULT '{}'::jsonb)
LANGUAGE plpgsql
AS $$
DECLARE
    v_run_id bigint;
    v_error text;
    v_state text;
BEGIN
    v_run_id := trackschema.job_run_begin(p_job, coalesce(p_params, '{}'::jsonb) || jsonb_build_object('command', p_command, 'via', 'sql'));
    COMMIT;
    BEGIN
        EXECUTE p_command;
    EXCEPTION WHEN query_canceled OR others THEN
        GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
    END;
    PERFORM trackschema.job_run_end(
        v_run_id,
        CASE WHEN v_state IS NULL THEN 'succeeded' ELSE 'failed' END,
        NULL,
        CASE WHEN v_state IS NULL THEN NULL ELSE v_state || ': ' || v_error END);
    COMMIT;
    IF v_state IS NOT NULL THEN
        RAISE EXCEPTION 'job % failed: %', p_job, v_error USING ERRCODE = v_state;
    END IF;
END
$$;
