-- trackschema.consumer_ack(name, window_no, position, handled, done): the batch is
-- handled, in this transaction: move the consumer's position to `position` (the id of the
-- batch's last event) and count `handled` events. With `done` the window is finished:
-- its snapshot becomes the consumer's snapshot (everything committed by then is
-- handled) and the next consumer_next_window opens a new one.
--
-- Call it in the transaction that called consumer_lock and ran the handler, so the
-- handler's writes and the new position commit together: a batch is committed exactly
-- once, and a worker killed before the commit leaves the position where it was (the
-- batch is handled again by the next worker: at least once). Returns false when the row
-- is not at `window_no` (nothing changed).
CREATE OR REPLACE FUNCTION trackschema.consumer_ack(
    p_name text,
    p_window_no bigint,
    p_position uuid,
    p_handled bigint,
    p_done boolean
)
RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE trackschema.consumers c
       SET position = CASE WHEN p_done THEN NULL ELSE coalesce(p_position, c.position) END,
           handled = c.handled + p_handled,
           last_seen = now(),
           snapshot = CASE WHEN p_done THEN c.window_snapshot ELSE c.snapshot END,
           snapshot_at = CASE WHEN p_done THEN c.window_at ELSE c.snapshot_at END,
           window_snapshot = CASE WHEN p_done THEN NULL ELSE c.window_snapshot END,
           window_at = CASE WHEN p_done THEN NULL ELSE c.window_at END
     WHERE c.name = p_name AND c.window_no = p_window_no AND c.window_snapshot IS NOT NULL;
    RETURN FOUND;
END
$$;
