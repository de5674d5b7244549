-- Statement-level trigger function on analytics_sessions (AFTER DELETE, transition table
-- old_rows): the page views and clicks of the deleted sessions are deleted too, set-based,
-- one statement per table (the ON DELETE CASCADE of the foreign keys this replaces since
-- revision 0102).
-- Rows a concurrent transaction added to one of these sessions cannot be missed: their
-- insert locked the session FOR KEY SHARE (analytics_session_refs_check), so the DELETE of
-- the session waited for that transaction, and under READ COMMITTED each statement here
-- takes a new snapshot, which sees its rows. Under REPEATABLE READ or SERIALIZABLE the
-- inserting paths also update the session row (its counters: the ingest's upsert or
-- analytics_count_session_events), so the DELETE of the session fails with a serialization
-- error instead (docs/design.md#ingest says what remains).
-- SECURITY DEFINER: as the foreign key's cascade, it runs with the table owner's rights.
CREATE FUNCTION trackschema.analytics_sessions_delete_children()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
BEGIN
    DELETE FROM analytics_page_views AS v
     WHERE v.session_id IN (SELECT o.session_id FROM old_rows AS o);
    DELETE FROM analytics_clicks AS c
     WHERE c.session_id IN (SELECT o.session_id FROM old_rows AS o);
    RETURN NULL;
END
$fn$;
