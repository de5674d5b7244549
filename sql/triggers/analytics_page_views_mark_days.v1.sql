-- Statement-level trigger function on analytics_page_views (INSERT, UPDATE): the UTC days of
-- the rows written (old and new days on UPDATE) get a dirty marker, once per statement.
-- SECURITY DEFINER: an insert-only ingest role has no access to the trackschema schema.
CREATE FUNCTION trackschema.analytics_page_views_mark_days()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM trackschema.analytics_mark_days(ARRAY(
            SELECT DISTINCT (n.viewed_at AT TIME ZONE 'UTC')::date FROM new_rows AS n));
    ELSE
        PERFORM trackschema.analytics_mark_days(ARRAY(
            SELECT (o.viewed_at AT TIME ZONE 'UTC')::date FROM old_rows AS o
            UNION
            SELECT (n.viewed_at AT TIME ZONE 'UTC')::date FROM new_rows AS n));
    END IF;
    RETURN NULL;
END
$fn$;
