-- trackschema.consumer_lock(name, window_no, position): lock the consumer's row for one
-- batch, if the consumer is still where the caller left it (the same window, the same
-- position: NULL before the first batch of a window). Returns NULL when it is not
-- (another worker moved it on: the caller drops what it read and asks for the window
-- again), else the number of the consumer's open failed events (event_retries rows not
-- dead), so the caller knows whether some entities must wait behind one.
--
-- Call it first in the batch's transaction, before handling anything: the row lock is
-- held to the end of that transaction, so two workers of one consumer can never handle
-- the same batch at the same time; the second waits here and then finds the position
-- moved. Handle the batch, then consumer_ack in the same transaction.
CREATE OR REPLACE FUNCTION trackschema.consumer_lock(p_name text, p_window_no bigint, p_position uuid)
RETURNS bigint
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM trackschema.consumers c
      WHERE c.name = p_name AND c.window_no = p_window_no AND c.window_snapshot IS NOT NULL
        AND c.position IS NOT DISTINCT FROM p_position
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT count(*) FROM public.event_retries r WHERE r.consumer = p_name AND r.status <> 'dead');
END
$$;
