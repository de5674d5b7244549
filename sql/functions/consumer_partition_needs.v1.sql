-- trackschema.consumer_partition_needs(partition): the consumers that still need a
-- partition of entity_events, each with how many of its events they have not handled and
-- how many of their open failed events (event_retries, not dead) live in it. No row: no
-- consumer needs it, and retiring it (archive or drop) loses nothing any consumer has
-- still to handle. A table that is not a partition of entity_events gives no row.
--
-- `partitions retire` and the partition-maintenance job refuse a partition while this
-- returns a row. An event is not handled while its transaction is not visible in the
-- consumer's snapshot (running, or committed since), unless the consumer's open window
-- has passed it. Reads the partition's xid index and primary key.
CREATE OR REPLACE FUNCTION trackschema.consumer_partition_needs(p_partition regclass)
RETURNS TABLE (consumer text, events bigint, retries bigint)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_consumer trackschema.consumers;
    v_events bigint;
    v_retries bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits i
                    WHERE i.inhrelid = p_partition AND i.inhparent = 'public.entity_events'::regclass) THEN
        RETURN;
    END IF;
    FOR v_consumer IN SELECT * FROM trackschema.consumers c ORDER BY c.name LOOP
        EXECUTE format(
            'SELECT count(*) FROM %s e
              WHERE (e.xid >= pg_snapshot_xmax($1) OR e.xid = ANY (ARRAY(SELECT pg_snapshot_xip($1))))
                AND NOT ($2 IS NOT NULL AND pg_visible_in_snapshot(e.xid, $3) AND e.id <= $2)', p_partition)
           INTO v_events USING v_consumer.snapshot, v_consumer.position, v_consumer.window_snapshot;
        EXECUTE format(
            'SELECT count(*) FROM public.event_retries r
              WHERE r.consumer = $1 AND r.status <> ''dead'' AND EXISTS (SELECT 1 FROM %s e WHERE e.id = r.entity_event_id)', p_partition)
           INTO v_retries USING v_consumer.name;
        IF v_events > 0 OR v_retries > 0 THEN
            consumer := v_consumer.name;
            events := v_events;
            retries := v_retries;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
