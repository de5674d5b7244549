-- trackschema.consumer_register(name, handler, max_attempts): the named consumer of the
-- entity_events outbox, created if it does not exist yet (then returned as it is).
--
-- A new consumer starts at the current snapshot (pg_current_snapshot()): it will be given
-- every change committed after this call commits, and nothing committed before. Its
-- cursor is the snapshot, not an event id: a transaction that started earlier but
-- commits later is in no snapshot yet, so it is never skipped (docs/design.md#outbox).
-- `handler` records which code handles the consumer's events (`module:function`);
-- `max_attempts` how often a failed event is tried before it is left dead.
-- Race-free: two sessions registering the same name get the same row.
CREATE OR REPLACE FUNCTION trackschema.consumer_register(
    p_name text,
    p_handler text DEFAULT NULL,
    p_max_attempts integer DEFAULT 5
)
RETURNS trackschema.consumers
LANGUAGE plpgsql
AS $$
DECLARE
    v_row trackschema.consumers;
BEGIN
    INSERT INTO trackschema.consumers (name, handler, snapshot, snapshot_at, max_attempts)
    VALUES (p_name, p_handler, pg_current_snapshot(), now(), coalesce(p_max_attempts, 5))
    ON CONFLICT (name) DO NOTHING;
    SELECT * INTO v_row FROM trackschema.consumers c WHERE c.name = p_name;
    RETURN v_row;
END
$$;
