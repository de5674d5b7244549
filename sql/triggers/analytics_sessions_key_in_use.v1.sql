-- Row-level trigger function on analytics_sessions (AFTER UPDATE OF session_id, WHEN the key
-- changed): NO ACTION, as the foreign keys this replaces since revision 0102 had it. At the
-- end of the statement, when no session carries the old key any more, a page view or click
-- that still references it refuses the update with foreign_key_violation (23503).
-- A concurrent insert that references the old key holds the session FOR KEY SHARE, which a
-- key update waits for; the check's new snapshot (READ COMMITTED) then sees its rows.
-- SECURITY DEFINER: the check reads every row, as the foreign key's did (table owner).
CREATE FUNCTION trackschema.analytics_sessions_key_in_use()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_table text;
BEGIN
    IF EXISTS (SELECT 1 FROM analytics_sessions AS s WHERE s.session_id = OLD.session_id) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM analytics_page_views AS v WHERE v.session_id = OLD.session_id) THEN
        v_table := 'analytics_page_views';
    ELSIF EXISTS (SELECT 1 FROM analytics_clicks AS c WHERE c.session_id = OLD.session_id) THEN
        v_table := 'analytics_clicks';
    END IF;
    IF v_table IS NOT NULL THEN
        RAISE EXCEPTION 'update on table "analytics_sessions" violates the session reference of table "%": session_id "%" is still referenced',
              v_table, OLD.session_id
              USING ERRCODE = 'foreign_key_violation',
                    DETAIL = format('Key (session_id)=(%s) is still referenced from table "%s".', OLD.session_id, v_table),
                    SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'session_id',
                    CONSTRAINT = TG_NAME;
    END IF;
    RETURN NULL;
END
$fn$;
