-- Record (or refresh) why one row's JSON value could not be promoted to its column.
-- Called by the dual-write trigger, which runs as the application's role: SECURITY
-- DEFINER with a fixed search_path, so the application needs no privilege on the
-- trackschema schema. It never raises: a failure to record is a WARNING, because the
-- application's write must not fail over bookkeeping. Only the rare reject path calls it.
CREATE FUNCTION trackschema.record_promotion_reject(p_promotion text, p_row_id uuid, p_value jsonb, p_reason text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO trackschema.promotion_rejects AS r (promotion, row_id, value, reason)
    VALUES (p_promotion, p_row_id, p_value, p_reason)
    ON CONFLICT (promotion, row_id) DO UPDATE
        SET value = excluded.value, reason = excluded.reason, last_seen = now()
        WHERE (r.value, r.reason) IS DISTINCT FROM (excluded.value, excluded.reason);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'trackschema: could not record a reject for promotion % row %: %', p_promotion, p_row_id, SQLERRM;
END
$$;
