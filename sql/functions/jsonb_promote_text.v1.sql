-- The text a JSON value promotes to: the string itself when the value is a JSON string and
-- (when `allowed` is given) one of `allowed`; NULL for anything else (a missing key, JSON
-- null, a number, an object, a string that is not allowed). Never raises.
-- One SELECT of one immutable expression, so the planner inlines it: the dual-write
-- trigger, set-based backfill batches, CHECK constraints and the NULL-rate queries all
-- evaluate exactly this rule at the cost of a plain expression.
CREATE FUNCTION jsonb_promote_text(value jsonb, allowed text[] DEFAULT NULL)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(value) = 'string' AND (allowed IS NULL OR (value #>> '{}') = ANY (allowed))
        THEN value #>> '{}'
    END
$$;
