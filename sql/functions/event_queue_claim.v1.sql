-- event_queue_claim(worker, batch, visibility): lease up to `batch` ready events to one
-- worker and return them.
--
-- Ready means pending or processing, `available_at` passed (a new event, a retry whose
-- backoff ended, or an event whose lease ran out because its worker crashed or hung) and
-- attempts left. Rows are picked oldest-available first with FOR UPDATE SKIP LOCKED, so
-- concurrent workers never wait for each other or take the same row. Each claimed row
-- gets status 'processing', attempts + 1, a fresh claim token shared by the batch, and
-- `available_at` = now + visibility: the lease. A worker finishes an event with
-- event_queue_complete or event_queue_fail, presenting the token; once the lease has
-- run out another worker may claim the event again and the old token stops working.
--
-- An event whose lease ran out on its last allowed attempt is moved to 'dead' here (its
-- worker died on it max_attempts times), keeping an error that says so.
--
-- Commit right after the call: the lease is only visible to other workers once committed.
CREATE OR REPLACE FUNCTION event_queue_claim(
    p_worker text,
    p_batch integer DEFAULT 100,
    p_visibility interval DEFAULT interval '30 seconds'
)
RETURNS SETOF event_queue
LANGUAGE plpgsql
AS $$
DECLARE
    v_token uuid := gen_random_uuid();
BEGIN
    IF p_batch IS NULL OR p_batch < 1 THEN
        RAISE EXCEPTION 'event_queue_claim: batch must be at least 1, got %', p_batch USING ERRCODE = '22023';
    END IF;
    IF p_visibility IS NULL OR p_visibility <= interval '0' THEN
        RAISE EXCEPTION 'event_queue_claim: visibility timeout must be positive, got %', p_visibility USING ERRCODE = '22023';
    END IF;

    WITH expired AS (
        SELECT id FROM event_queue
         WHERE status = 'processing' AND available_at <= now() AND attempts >= max_attempts
         ORDER BY available_at, id
         FOR UPDATE SKIP LOCKED
    )
    UPDATE event_queue q
       SET status = 'dead', claim_token = NULL, failed_at = now(),
           last_error = format('lease expired on attempt %s of %s: claimed by %s at %s and never completed (worker crashed or exceeded the visibility timeout)',
                               q.attempts, q.max_attempts, coalesce(q.claimed_by, '?'), q.claimed_at)
      FROM expired
     WHERE q.id = expired.id;

    RETURN QUERY
    WITH ready AS (
        SELECT id FROM event_queue
         WHERE status IN ('pending', 'processing') AND available_at <= now() AND attempts < max_attempts
         ORDER BY available_at, id
         LIMIT p_batch
         FOR UPDATE SKIP LOCKED
    )
    UPDATE event_queue q
       SET status = 'processing', attempts = q.attempts + 1, available_at = clock_timestamp() + p_visibility,
           claimed_at = clock_timestamp(), claimed_by = p_worker, claim_token = v_token
      FROM ready
     WHERE q.id = ready.id
    RETURNING q.*;
END
$$;
