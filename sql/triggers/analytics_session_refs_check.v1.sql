-- Trigger function on analytics_page_views and analytics_clicks: their session_id must name
-- a row of analytics_sessions (the reference the foreign keys *_session_id_fkey enforced
-- until revision 0102; same semantics, checked once per statement instead of once per row).
--   * AFTER INSERT, FOR EACH STATEMENT (transition table new_rows): every distinct session
--     the statement references is locked once, FOR KEY SHARE, in session_id COLLATE "C"
--     order (the order of the ingest's upsert, the counter trigger and the purge, so none of
--     them can deadlock with this). Rows this transaction holds already (the ingest's upsert
--     locked them FOR NO KEY UPDATE) cost no wait.
--   * AFTER UPDATE OF session_id, FOR EACH ROW WHEN the key changed (a transition table
--     cannot go with a column list): the new session, locked the same way.
-- A session that is missing, or was deleted (or had its key changed) by a transaction this
-- one waited for, raises foreign_key_violation (23503) naming the table, the first missing
-- session_id (COLLATE "C") and how many are missing; the statement is undone.
-- The lock is what keeps the reference true: a DELETE of the session waits for it (and then
-- cascades to these rows, analytics_sessions_delete_children), as it waited for the FK's.
-- SECURITY DEFINER: FOR KEY SHARE needs UPDATE on analytics_sessions, which an insert-only
-- ingest role lacks (the FK's check ran as the table owner too); row-level security is not
-- forced on these tables, so the owner sees every session, as the FK check did.
CREATE FUNCTION trackschema.analytics_session_refs_check()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_ids     text[];
    v_found   bigint;
    v_locked  text[];
    v_missing text;
    v_count   bigint;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        v_ids := ARRAY[NEW.session_id];
    ELSE
        v_ids := ARRAY(SELECT DISTINCT r.session_id FROM new_rows AS r WHERE r.session_id IS NOT NULL);
    END IF;
    IF cardinality(v_ids) = 0 OR v_ids = ARRAY[NULL::text] THEN
        RETURN NULL;
    END IF;

    PERFORM 1 FROM analytics_sessions AS s
     WHERE s.session_id = ANY (v_ids)
     ORDER BY s.session_id COLLATE "C"
       FOR KEY SHARE;
    GET DIAGNOSTICS v_found = ROW_COUNT;
    IF v_found = cardinality(v_ids) THEN
        RETURN NULL;
    END IF;

    -- Some are missing (rare): which ones. The same locks again (held already: no wait),
    -- so a session committed meanwhile by another transaction is locked now and counts.
    SELECT array_agg(l.session_id) INTO v_locked
      FROM (SELECT s.session_id FROM analytics_sessions AS s
             WHERE s.session_id = ANY (v_ids)
             ORDER BY s.session_id COLLATE "C"
               FOR KEY SHARE) AS l;
    SELECT min(i.id COLLATE "C"), count(*) INTO v_missing, v_count
      FROM unnest(v_ids) AS i(id)
     WHERE NOT (i.id = ANY (coalesce(v_locked, '{}'::text[])));
    IF v_count > 0 THEN
        RAISE EXCEPTION 'insert or update on table "%" violates its session reference: session_id "%" is not present in table "analytics_sessions" (% missing)',
              TG_TABLE_NAME, v_missing, v_count
              USING ERRCODE = 'foreign_key_violation',
                    DETAIL = format('Key (session_id)=(%s) is not present in table "analytics_sessions".', v_missing),
                    SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'session_id',
                    CONSTRAINT = TG_NAME;
    END IF;
    RETURN NULL;
END
$fn$;
