-- The uuid a JSON value promotes to: a JSON string holding a uuid in canonical form
-- (8-4-4-4-12 hex digits) or as 32 bare hex digits, either case; NULL for anything else.
-- Never raises: both forms are ones uuid_in accepts, so the cast cannot fail. (uuid_in
-- also takes braces and odd hyphenation; those are reported as "not a uuid".)
-- Inlinable like jsonb_promote_text. The test is LIKE for the shape plus one simple
-- character-class regex: a pattern with counted repetitions ({8}) costs about ten times
-- more per call, and this runs inside the dual-write trigger on every write.
CREATE FUNCTION jsonb_promote_uuid(value jsonb)
RETURNS uuid
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(value) = 'string'
             AND (value #>> '{}') ~ '^[0-9A-Fa-f-]+$'
             AND (((value #>> '{}') LIKE '________-____-____-____-____________' AND (value #>> '{}') NOT LIKE '%-%-%-%-%-%')
                  OR (length(value #>> '{}') = 32 AND strpos(value #>> '{}', '-') = 0))
        THEN (value #>> '{}')::uuid
    END
$$;
