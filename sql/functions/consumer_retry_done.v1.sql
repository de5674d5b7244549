-- trackschema.consumer_retry_done(ids, token): the retried events are handled; remove
-- their rows. Only rows still leased with `token` are removed; the count tells the worker
-- how many. Call it in the transaction of the handler's writes: if the count is short,
-- another worker took some over after the lease ran out, and the worker must roll back.
CREATE OR REPLACE FUNCTION trackschema.consumer_retry_done(p_ids bigint[], p_token uuid)
RETURNS integer
LANGUAGE sql
AS $$
    WITH done AS (
        DELETE FROM public.event_retries
         WHERE id = ANY (p_ids) AND claim_token = p_token AND status = 'processing'
        RETURNING 1
    )
    SELECT count(*)::integer FROM done
$$;
