-- trackschema.partition_bound_literal(key_type, bound): the SQL literal for a partition
-- boundary `bound` (a UTC instant) on a key column of type `key_type`, written so that it
-- means the same instant whatever the session's TimeZone: timestamptz bounds carry +00,
-- timestamp and date bounds are the UTC wall-clock value. Used for partition bounds and
-- for the CHECK constraint that lets ATTACH PARTITION skip its validation scan (the two
-- must be written identically for PostgreSQL to prove one implies the other).
CREATE OR REPLACE FUNCTION trackschema.partition_bound_literal(key_type regtype, bound timestamptz)
RETURNS text
LANGUAGE sql
IMMUTABLE STRICT
AS $$
    SELECT CASE key_type
        WHEN 'timestamp with time zone'::regtype
            THEN quote_literal(to_char(bound AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00') || '::timestamptz'
        WHEN 'timestamp without time zone'::regtype
            THEN quote_literal(to_char(bound AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')) || '::timestamp'
        WHEN 'date'::regtype
            THEN quote_literal(to_char(bound AT TIME ZONE 'UTC', 'YYYY-MM-DD')) || '::date'
    END
$$;
