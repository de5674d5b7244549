-- Start a recorded run of job p_job from SQL (the entry point pg_cron calls).
-- Takes the same session-level advisory lock as `trackschema jobs run` (class
-- 0x74726B02 = 1953655554, key hashtext(job)), so a SQL run and a CLI run of one job never
-- overlap; a second run is refused with SQLSTATE 55P03 and is not recorded. Inserts the
-- 'running' row into trackschema.job_runs and returns its id; the caller commits, does
-- the work and calls trackschema.job_run_end(), which releases the lock. Should the
-- session end first, PostgreSQL releases the lock and the row stays 'running'.
CREATE FUNCTION trackschema.job_run_begin(p_job text, p_params jsonb DEFAULT '{}'::jsonb)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_run_id bigint;
    v_holder integer;
BEGIN
    IF NOT pg_try_advisory_lock(1953655554, hashtext(p_job)) THEN
        SELECT l.pid INTO v_holder
          FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted
           AND l.classid = 1953655554 AND l.objid = hashtext(p_job)::oid AND l.objsubid = 2
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         LIMIT 1;
        RAISE EXCEPTION 'job % is already running in pid %', p_job, coalesce(v_holder::text, '?')
            USING ERRCODE = 'lock_not_available', HINT = 'wait for that run to finish';
    END IF;
    INSERT INTO trackschema.job_runs (job, params)
    VALUES (p_job, coalesce(p_params, '{}'::jsonb))
    RETURNING id INTO v_run_id;
    RETURN v_run_id;
END
$$;
