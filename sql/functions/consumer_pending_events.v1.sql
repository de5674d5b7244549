-- trackschema.consumer_pending_events(name): the outbox events committed so far (by the
-- caller's snapshot) that the consumer has not handled yet: those of its open window
-- after its position, and those committed since. Failed events are not among them (they
-- are event_retries rows). Unordered; one row per event.
--
-- Reads the index on entity_events.xid from the consumer's snapshot on: cheap while the
-- consumer keeps up, proportional to its lag when it does not.
CREATE OR REPLACE FUNCTION trackschema.consumer_pending_events(p_name text)
RETURNS TABLE (id uuid, xid xid8, entity_id uuid, table_name text, action text, occurred_at timestamptz)
LANGUAGE sql
STABLE
AS $$
    SELECT w.id, w.xid, w.entity_id, w.table_name, w.action, w.occurred_at
      FROM trackschema.consumers c
     CROSS JOIN LATERAL trackschema.consumer_window_events(c.snapshot, pg_current_snapshot()) AS w
     WHERE c.name = p_name
       AND NOT (c.position IS NOT NULL AND pg_visible_in_snapshot(w.xid, c.window_snapshot) AND w.id <= c.position)
$$;
