-- trackschema.analytics_try_uuid(value): the text as a uuid, or NULL when it is not one.
-- Used by analytics_ingest only for batches whose fast path hit a bad value.
CREATE FUNCTION trackschema.analytics_try_uuid(p_value text)
RETURNS uuid
LANGUAGE plpgsql
IMMUTABLE
AS $fn$
BEGIN
    RETURN p_value::uuid;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$fn$;
