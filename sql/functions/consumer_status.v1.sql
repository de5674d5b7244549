-- trackschema.consumer_status(): one row per consumer of the entity_events outbox.
--
--   lag_events   events committed and not yet handled: pending in the outbox (see
--                consumer_pending_events) plus failed events waiting for a retry
--   lag_seconds  age of the oldest of those (now() - its occurred_at, the time its
--                transaction started), 0 when there is none
--   position_at  everything committed before this instant is handled (except failures)
--   window_open  a window is being handled (or was left half done by a worker that died)
--   retry_pending / retry_processing / dead   its event_retries rows by status
--   worker_active  a worker holds the consumer (its session advisory lock, see
--                trackschema.tracking.queue)
-- Reads only. The lag scan is proportional to the lag (the xid index).
CREATE OR REPLACE FUNCTION trackschema.consumer_status()
RETURNS TABLE (
    name text, handler text, lag_events bigint, lag_seconds double precision, position_at timestamptz,
    window_open boolean, handled bigint, retry_pending bigint, retry_processing bigint, dead bigint,
    max_attempts integer, registered_at timestamptz, last_seen timestamptz, worker_active boolean
)
LANGUAGE sql
STABLE
AS $$
    SELECT c.name, c.handler,
           p.events + r.pending + r.processing,
           coalesce(extract(epoch FROM now() - least(p.oldest, r.oldest))::double precision, 0),
           c.snapshot_at, c.window_snapshot IS NOT NULL, c.handled, r.pending, r.processing, r.dead,
           c.max_attempts::integer, c.registered_at, c.last_seen,
           EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND l.classid = 1953653611 AND l.objid = c.id AND l.objsubid = 2 AND l.granted)
      FROM trackschema.consumers c
     CROSS JOIN LATERAL (SELECT count(*) AS events, min(e.occurred_at) AS oldest
                           FROM trackschema.consumer_pending_events(c.name) AS e) AS p
     CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE q.status = 'pending') AS pending,
                                count(*) FILTER (WHERE q.status = 'processing') AS processing,
                                count(*) FILTER (WHERE q.status = 'dead') AS dead,
                                min(q.created_at) FILTER (WHERE q.status <> 'dead') AS oldest
                           FROM public.event_retries q WHERE q.consumer = c.name) AS r
     ORDER BY c.name
$$;
