-- INSTEAD OF INSERT trigger function of the view public.event_queue (revision 0090): a row
-- written the pre-0090 way, into event_queue, becomes a failed-or-pending row of
-- public.event_retries for the consumer the row names (column `consumer`), else for the
-- default consumer 'propagate', ready now unless the row says otherwise. So a writer
-- that still inserts into event_queue (an application, or a statement that was queued
-- behind the 0090 upgrade and resolved the name again afterwards) loses nothing.
--
-- A row naming an entity_events row that carries an xid (an outbox event since 0090) is
-- skipped: consumers get that event from the outbox already, so handling it from here
-- too would be a duplicate.
CREATE OR REPLACE FUNCTION public.event_queue_compat_insert()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF NEW.entity_event_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM public.entity_events e WHERE e.id = NEW.entity_event_id AND e.xid IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO public.event_retries (consumer, event_type, payload, entity_event_id, entity_id, status, attempts,
                                      max_attempts, available_at, created_at, claimed_at, claimed_by, claim_token,
                                      failed_at, last_error)
    VALUES (coalesce(NEW.consumer, 'propagate'), NEW.event_type, coalesce(NEW.payload, '{}'::jsonb), NEW.entity_event_id,
            (SELECT e.entity_id FROM public.entity_events e WHERE e.id = NEW.entity_event_id),
            coalesce(NEW.status, 'pending'), coalesce(NEW.attempts, 0), coalesce(NEW.max_attempts, 5),
            coalesce(NEW.available_at, now()), coalesce(NEW.created_at, now()), NEW.claimed_at, NEW.claimed_by,
            NEW.claim_token, NEW.failed_at, NEW.last_error)
    RETURNING id INTO NEW.id;
    RETURN NEW;
END
$fn$;
