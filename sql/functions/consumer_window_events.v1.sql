-- trackschema.consumer_window_events(from, to): the outbox events committed after
-- snapshot `from` and by snapshot `to`: the entity_events rows whose writing transaction
-- (`xid`) is visible in `to` and not in `from`. Unordered; a consumer reads them ORDER BY
-- id (write order, see install_entity_tracking v2).
--
-- Visible in a snapshot means finished when it was taken; an aborted transaction's rows
-- are invisible anyway. Two parts, so the index on xid is read over a short range even
-- while a long transaction was open at `from` (whose xmin then lags far behind):
--   * xid in [xmax(from), xmax(to)) and visible in `to`: transactions that started after
--     `from` and finished by `to`;
--   * xid in the in-progress list of `from` and visible in `to`: the ones that were
--     running at `from` and finished since: the late committers, never skipped.
-- Everything below xmax(from) and not in its in-progress list was finished at `from`,
-- so an earlier window had it. Rows without xid (written before revision 0090) are no
-- outbox events.
CREATE OR REPLACE FUNCTION trackschema.consumer_window_events(p_from pg_snapshot, p_to pg_snapshot)
RETURNS TABLE (id uuid, xid xid8, entity_id uuid, table_name text, action text, occurred_at timestamptz)
LANGUAGE sql
STABLE
AS $$
    SELECT e.id, e.xid, e.entity_id, e.table_name, e.action::text, e.occurred_at
      FROM public.entity_events e
     WHERE e.xid >= pg_snapshot_xmax(p_from) AND e.xid < pg_snapshot_xmax(p_to)
       AND pg_visible_in_snapshot(e.xid, p_to)
    UNION ALL
    SELECT e.id, e.xid, e.entity_id, e.table_name, e.action::text, e.occurred_at
      FROM public.entity_events e
     WHERE e.xid = ANY (ARRAY(SELECT x FROM pg_snapshot_xip(p_from) AS x WHERE pg_visible_in_snapshot(x, p_to)))
$$;
