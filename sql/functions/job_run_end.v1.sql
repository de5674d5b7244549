-- Finish a run started by trackschema.job_run_begin(): record the outcome and release
-- the job's advisory lock (held by this session since job_run_begin).
CREATE FUNCTION trackschema.job_run_end(p_run_id bigint, p_status text, p_result jsonb DEFAULT NULL, p_error text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_job text;
BEGIN
    UPDATE trackschema.job_runs
       SET finished_at = clock_timestamp(), status = p_status, result = p_result, error = p_error
     WHERE id = p_run_id
    RETURNING job INTO v_job;
    IF v_job IS NOT NULL THEN
        PERFORM pg_advisory_unlock(1953655554, hashtext(v_job));
    END IF;
END
$$;
