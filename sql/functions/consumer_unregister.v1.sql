-- trackschema.consumer_unregister(name): forget a consumer, its cursor and its failed
-- events (event_retries rows). Returns whether it existed.
--
-- What it had not handled yet is never given to it again; the partitions it was holding
-- back (consumer_partition_needs) may then be retired. A worker still running under the
-- name stops at its next batch (its consumer is gone). Locks the consumer's row.
CREATE OR REPLACE FUNCTION trackschema.consumer_unregister(p_name text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM trackschema.consumers c WHERE c.name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM public.event_retries r WHERE r.consumer = p_name;
    DELETE FROM trackschema.consumers c WHERE c.name = p_name;
    RETURN true;
END
$$;
