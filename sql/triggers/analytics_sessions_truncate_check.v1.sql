-- Statement-level trigger function on analytics_sessions (AFTER TRUNCATE): refuses the
-- TRUNCATE (feature_not_supported, 0A000, as PostgreSQL refuses to truncate a table a
-- foreign key references) unless analytics_page_views and analytics_clicks are empty once
-- the statement has truncated its tables: `TRUNCATE analytics_sessions, analytics_page_views,
-- analytics_clicks` works, `TRUNCATE analytics_sessions` alone only when they hold no row.
-- `TRUNCATE analytics_sessions CASCADE` does not reach them (no foreign key since revision
-- 0102): it is refused the same way when they hold rows. AFTER TRUNCATE triggers run once
-- every table of the statement is truncated, so the children's TRUNCATE is seen.
-- SECURITY DEFINER: reads the children whatever the caller may read (table owner).
CREATE FUNCTION trackschema.analytics_sessions_truncate_check()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_table text;
BEGIN
    IF EXISTS (SELECT 1 FROM analytics_page_views) THEN
        v_table := 'analytics_page_views';
    ELSIF EXISTS (SELECT 1 FROM analytics_clicks) THEN
        v_table := 'analytics_clicks';
    END IF;
    IF v_table IS NOT NULL THEN
        RAISE EXCEPTION 'cannot truncate table "analytics_sessions": table "%" references it and still has rows', v_table
              USING ERRCODE = 'feature_not_supported',
                    HINT = 'truncate analytics_page_views and analytics_clicks in the same statement';
    END IF;
    RETURN NULL;
END
$fn$;
