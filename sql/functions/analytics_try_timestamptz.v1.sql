-- trackschema.analytics_try_timestamptz(value): an event time from JSON, or NULL when it
-- cannot be read. Strings take PostgreSQL's timestamptz input (ISO 8601 recommended; no
-- zone means UTC), numbers are epoch milliseconds (JavaScript's Date.now()).
-- Used by analytics_ingest only for batches whose fast path hit a bad value: the exception
-- block costs a subtransaction per call.
CREATE FUNCTION trackschema.analytics_try_timestamptz(p_value jsonb)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
SET TimeZone = 'UTC'
AS $fn$
BEGIN
    RETURN CASE jsonb_typeof(p_value)
               WHEN 'string' THEN (p_value #>> '{}')::timestamptz
               WHEN 'number' THEN to_timestamp((p_value #>> '{}')::double precision / 1000)
           END;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$fn$;
