-- trackschema.consumer_retry_claim(consumer, worker, batch, visibility): lease up to
-- `batch` of the consumer's failed (or parked) events that are due, and return them.
--
-- Due: pending (or processing with its lease run out: the worker died), available_at
-- passed, attempts left, and no earlier open row (not dead) of the same entity for this
-- consumer: an entity's events are retried one at a time in id (commit) order, and the
-- ones behind a failing event wait until it succeeds or is dead. Rows are picked
-- oldest-available first with FOR UPDATE SKIP LOCKED. Each claimed row gets status
-- 'processing', attempts + 1, a claim token shared by the batch and available_at = now +
-- visibility (the lease); finish it with consumer_retry_done or consumer_retry_fail,
-- presenting the token. An event whose lease ran out on its last attempt is made dead
-- here, with an error that says so.
--
-- Commit right after the call: the attempt is counted even if the worker then dies.
CREATE OR REPLACE FUNCTION trackschema.consumer_retry_claim(
    p_consumer text,
    p_worker text,
    p_batch integer DEFAULT 100,
    p_visibility interval DEFAULT interval '30 seconds'
)
RETURNS SETOF public.event_retries
LANGUAGE plpgsql
AS $$
DECLARE
    v_token uuid := gen_random_uuid();
BEGIN
    IF p_batch IS NULL OR p_batch < 1 THEN
        RAISE EXCEPTION 'consumer_retry_claim: batch must be at least 1, got %', p_batch USING ERRCODE = '22023';
    END IF;
    IF p_visibility IS NULL OR p_visibility <= interval '0' THEN
        RAISE EXCEPTION 'consumer_retry_claim: visibility timeout must be positive, got %', p_visibility USING ERRCODE = '22023';
    END IF;

    WITH expired AS (
        SELECT r.id FROM public.event_retries r
         WHERE r.consumer = p_consumer AND r.status = 'processing' AND r.available_at <= now() AND r.attempts >= r.max_attempts
         ORDER BY r.available_at, r.id
         FOR UPDATE SKIP LOCKED
    )
    UPDATE public.event_retries r
       SET status = 'dead', claim_token = NULL, failed_at = now(),
           last_error = format('lease expired on attempt %s of %s: claimed by %s at %s and never finished (worker crashed or exceeded the visibility timeout)',
                               r.attempts, r.max_attempts, coalesce(r.claimed_by, '?'), r.claimed_at)
      FROM expired
     WHERE r.id = expired.id;

    RETURN QUERY
    WITH ready AS (
        SELECT r.id FROM public.event_retries r
         WHERE r.consumer = p_consumer AND r.status IN ('pending', 'processing') AND r.available_at <= now()
           AND r.attempts < r.max_attempts
           AND NOT EXISTS (SELECT 1 FROM public.event_retries b
                            WHERE b.consumer = r.consumer AND b.entity_id = r.entity_id AND b.status <> 'dead'
                              AND (b.entity_event_id, b.id) < (r.entity_event_id, r.id))
         ORDER BY r.available_at, r.id
         LIMIT p_batch
         FOR UPDATE SKIP LOCKED
    )
    UPDATE public.event_retries r
       SET status = 'processing', attempts = r.attempts + 1, available_at = clock_timestamp() + p_visibility,
           claimed_at = clock_timestamp(), claimed_by = p_worker, claim_token = v_token
      FROM ready
     WHERE r.id = ready.id
    RETURNING r.*;
END
$$;
