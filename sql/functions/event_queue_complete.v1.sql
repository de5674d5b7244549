-- event_queue_complete(ids, token): the events are done; remove them from the queue.
--
-- Only rows still leased with `token` are removed; the count tells the worker how many
-- that was. Call it in the same transaction as the handler's writes: if the count is
-- short, another worker took some events over after the lease ran out, and the worker
-- must roll back so that each event's effects are committed exactly once. The history
-- of a change stays in entity_events; the queue keeps only work to do (no bloat from
-- finished rows beyond what autovacuum clears).
CREATE OR REPLACE FUNCTION event_queue_complete(p_ids bigint[], p_token uuid)
RETURNS integer
LANGUAGE sql
AS $$
    WITH done AS (
        DELETE FROM event_queue
         WHERE id = ANY (p_ids) AND claim_token = p_token AND status = 'processing'
        RETURNING 1
    )
    SELECT count(*)::integer FROM done
$$;
