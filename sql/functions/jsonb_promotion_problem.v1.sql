-- Why a JSON value cannot be promoted to `target` ('text' or 'uuid'), as one line for the
-- rejects table; NULL when it can (or when there is no value: a missing key or JSON null
-- is not a problem, just nothing to promote). A dangling reference is a different
-- problem (the value is fine, the referenced row is missing); callers word that one.
CREATE FUNCTION jsonb_promotion_problem(value jsonb, target text, allowed text[] DEFAULT NULL)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN NULL
        WHEN jsonb_typeof(value) <> 'string'
            THEN 'expected a JSON string, got ' || jsonb_typeof(value) || ' ' || left(value::text, 80)
        WHEN target = 'uuid' AND jsonb_promote_uuid(value) IS NULL
            THEN 'not a uuid: ' || left(value::text, 80)
        WHEN target = 'text' AND allowed IS NOT NULL AND NOT ((value #>> '{}') = ANY (allowed))
            THEN 'not an allowed value: ' || left(value::text, 80) || ' (allowed: ' || array_to_string(allowed, ', ') || ')'
    END
$$;
