-- trackschema.analytics_mark_days(days): record that the roll-ups of these UTC days are stale.
--
-- Markers live in trackschema.analytics_dirty_days; aggregate_analytics_daily(day) deletes
-- the markers of its day before it reads the raw rows. The protocol never loses a late event:
-- * if a marker for the day exists and is not being deleted, the caller takes FOR KEY SHARE
--   on it; the aggregator's DELETE then waits for the caller's commit and its next statement
--   (a fresh READ COMMITTED snapshot) sees the caller's rows;
-- * otherwise (none yet, or the aggregator is deleting it: SKIP LOCKED) the caller inserts a
--   marker of its own, which the running aggregator cannot see and so leaves for the next run.
-- Writers never wait here (KEY SHARE locks are compatible with each other, new markers have
-- fresh keys), so marking cannot take part in a deadlock.
CREATE FUNCTION trackschema.analytics_mark_days(p_days date[])
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO trackschema.analytics_dirty_days (day)
    SELECT d.day
      FROM (SELECT DISTINCT u.day FROM unnest(p_days) AS u(day) WHERE u.day IS NOT NULL) AS d
     WHERE NOT EXISTS (
               SELECT 1
                 FROM trackschema.analytics_dirty_days AS m
                WHERE m.day = d.day
                LIMIT 1
                  FOR KEY SHARE SKIP LOCKED)
     ORDER BY d.day
$fn$;
