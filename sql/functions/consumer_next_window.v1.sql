-- trackschema.consumer_next_window(name): the consumer's current window, opened now if it
-- has none: the events committed after its snapshot (`snapshot`) and by a new snapshot
-- taken here (`window_snapshot`), numbered `window_no`. Returns the consumer's row.
--
-- A window stays open until every one of its events is handled (consumer_ack with
-- done): a worker that dies half-way leaves it open with its `position` (the id of the
-- last event handled; events are read in id order), and the next worker resumes after
-- that id, in the same window. Locks the consumer's row until the caller's transaction
-- ends: commit right away (the window must be recorded before its events are read).
-- Raises no_data_found for an unknown consumer.
CREATE OR REPLACE FUNCTION trackschema.consumer_next_window(p_name text)
RETURNS trackschema.consumers
LANGUAGE plpgsql
AS $$
DECLARE
    v_row trackschema.consumers;
BEGIN
    SELECT * INTO v_row FROM trackschema.consumers c WHERE c.name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no consumer named %', p_name USING ERRCODE = 'no_data_found',
            HINT = 'register it with trackschema.consumer_register(name), or run trackschema queue work --consumer NAME';
    END IF;
    IF v_row.window_snapshot IS NULL THEN
        UPDATE trackschema.consumers c
           SET window_no = c.window_no + 1, window_snapshot = pg_current_snapshot(), window_at = now(),
               position = NULL, last_seen = now()
         WHERE c.name = p_name
        RETURNING * INTO v_row;
    END IF;
    RETURN v_row;
END
$$;
