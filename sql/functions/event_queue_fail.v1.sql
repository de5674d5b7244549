-- event_queue_fail(id, token, error, base_delay, max_delay): one attempt at an event failed.
--
-- With attempts left the event goes back to 'pending', available again after an
-- exponential backoff with jitter: base_delay * 2^(attempts - 1), capped at max_delay,
-- scaled by a random factor in [0.5, 1). On its last attempt it becomes 'dead' and stays
-- in the table for inspection. Either way `last_error` keeps the error text.
-- Returns the new status, or NULL when the lease was no longer this worker's (nothing
-- changed).
CREATE OR REPLACE FUNCTION event_queue_fail(
    p_id bigint,
    p_token uuid,
    p_error text,
    p_base_delay interval DEFAULT interval '1 second',
    p_max_delay interval DEFAULT interval '1 hour'
)
RETURNS text
LANGUAGE sql
AS $$
    UPDATE event_queue
       SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
           available_at = CASE
               WHEN attempts >= max_attempts THEN available_at
               ELSE now() + least(p_max_delay, p_base_delay * power(2, least(greatest(attempts - 1, 0), 40)))
                            * (0.5 + random() / 2)
           END,
           last_error = p_error,
           failed_at = now(),
           claim_token = NULL
     WHERE id = p_id AND claim_token = p_token AND status = 'processing'
    RETURNING status
$$;
