-- trackschema.consumer_retry_fail(id, token, error, base_delay, max_delay): one more
-- attempt at a failed event failed. With attempts left it is pending again after an
-- exponential backoff with jitter (base_delay * 2^(attempts - 1), capped at max_delay,
-- scaled by a random factor in [0.5, 1)); on its last attempt it is dead and stays, with
-- the error, for inspection (the events of its entity behind it then go on). Returns the
-- new status, or NULL when the lease was no longer this worker's (nothing changed).
CREATE OR REPLACE FUNCTION trackschema.consumer_retry_fail(
    p_id bigint,
    p_token uuid,
    p_error text,
    p_base_delay interval DEFAULT interval '1 second',
    p_max_delay interval DEFAULT interval '1 hour'
)
RETURNS text
LANGUAGE sql
AS $$
    UPDATE public.event_retries
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
