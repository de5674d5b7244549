-- Statement-level trigger function on analytics_sessions (INSERT, UPDATE).
-- A session counts on the UTC day of its first_seen. New sessions mark their day; an update
-- marks the old and the new day only when what the roll-ups read changed (first_seen's day,
-- user_code, share_code): the counter and last_seen updates of every ingest batch mark nothing.
CREATE FUNCTION trackschema.analytics_sessions_mark_days()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM trackschema.analytics_mark_days(ARRAY(
            SELECT DISTINCT (n.first_seen AT TIME ZONE 'UTC')::date FROM new_rows AS n));
    ELSE
        PERFORM trackschema.analytics_mark_days(ARRAY(
            SELECT d.day
              FROM old_rows AS o
              FULL JOIN new_rows AS n ON n.session_id = o.session_id
             CROSS JOIN LATERAL (VALUES ((o.first_seen AT TIME ZONE 'UTC')::date),
                                        ((n.first_seen AT TIME ZONE 'UTC')::date)) AS d(day)
             WHERE o.session_id IS NULL OR n.session_id IS NULL
                OR (o.first_seen AT TIME ZONE 'UTC')::date <> (n.first_seen AT TIME ZONE 'UTC')::date
                OR o.user_code IS DISTINCT FROM n.user_code
                OR o.share_code IS DISTINCT FROM n.share_code));
    END IF;
    RETURN NULL;
END
$fn$;
