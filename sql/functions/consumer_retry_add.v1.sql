-- trackschema.consumer_retry_add(consumer, event_ids, error, base_delay, max_delay): give
-- events of the consumer's window a row of their own in event_retries. Returns how many.
--
-- The only rows the outbox writes besides the events themselves, and only on failure:
--   * with `error`: the event failed its first attempt (attempts = 1); it is tried again
--     after base_delay scaled by a random factor in [0.5, 1) (capped at max_delay), or is
--     dead at once when the consumer allows a single attempt;
--   * without: the event is parked (attempts = 0, ready now) because an earlier event of
--     the same entity is still failing: consumer_retry_claim hands an entity's events out
--     one at a time in id order, so they reach the handler in commit order.
-- Call it in the batch's transaction, before consumer_ack moves the position past them.
CREATE OR REPLACE FUNCTION trackschema.consumer_retry_add(
    p_consumer text,
    p_event_ids uuid[],
    p_error text DEFAULT NULL,
    p_base_delay interval DEFAULT interval '1 second',
    p_max_delay interval DEFAULT interval '1 hour'
)
RETURNS integer
LANGUAGE sql
AS $$
    WITH added AS (
        INSERT INTO public.event_retries (consumer, event_type, entity_event_id, entity_id, created_at, status, attempts,
                                          max_attempts, available_at, failed_at, last_error)
        SELECT c.name, coalesce(e.table_name, 'entity') || '.' || lower(e.action), e.id, e.entity_id, e.occurred_at,
               CASE WHEN p_error IS NOT NULL AND c.max_attempts <= 1 THEN 'dead' ELSE 'pending' END,
               CASE WHEN p_error IS NULL THEN 0 ELSE 1 END,
               c.max_attempts,
               CASE WHEN p_error IS NULL THEN now()
                    ELSE now() + least(p_max_delay, p_base_delay) * (0.5 + random() / 2) END,
               CASE WHEN p_error IS NULL THEN NULL ELSE now() END,
               p_error
          FROM public.entity_events e, trackschema.consumers c
         WHERE e.id = ANY (p_event_ids) AND c.name = p_consumer
        RETURNING 1
    )
    SELECT count(*)::integer FROM added
$$;
