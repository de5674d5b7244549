-- trackschema.partition_bounds(parent): every partition of a range-partitioned table with
-- its bounds as UTC instants (lower NULL = MINVALUE, upper NULL = MAXVALUE), read from the
-- catalog. The default partition has is_default and no bounds. detach_pending marks a
-- partition left half-detached by an interrupted DETACH ... CONCURRENTLY (finish it with
-- DETACH PARTITION ... FINALIZE; `trackschema partitions retire` does).
CREATE OR REPLACE FUNCTION trackschema.partition_bounds(parent regclass)
RETURNS TABLE (partition regclass, is_default boolean, lower_bound timestamptz, upper_bound timestamptz, detach_pending boolean)
LANGUAGE plpgsql
STABLE
SET TimeZone = 'UTC'
AS $fn$
DECLARE
    key_type regtype;
    spec record;
    lo text;
    hi text;
BEGIN
    SELECT a.atttypid::regtype INTO key_type
      FROM pg_partitioned_table pt
      JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = parent AND pt.partstrat = 'r' AND pt.partnatts = 1;
    IF key_type IS NULL THEN
        RAISE EXCEPTION '% is not range-partitioned on one column', parent USING ERRCODE = 'wrong_object_type';
    END IF;
    FOR spec IN
        SELECT c.oid::regclass AS part, pg_get_expr(c.relpartbound, c.oid) AS bound, i.inhdetachpending AS pending
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = parent
    LOOP
        partition := spec.part;
        detach_pending := spec.pending;
        IF spec.bound = 'DEFAULT' THEN
            is_default := true;
            lower_bound := NULL;
            upper_bound := NULL;
        ELSE
            is_default := false;
            lo := substring(spec.bound FROM '^FOR VALUES FROM \((.*)\) TO \(.*\)$');
            hi := substring(spec.bound FROM '^FOR VALUES FROM \(.*\) TO \((.*)\)$');
            lower_bound := CASE WHEN lo = 'MINVALUE' THEN NULL
                                WHEN key_type = 'date'::regtype THEN (trim(BOTH '''' FROM lo)::date)::timestamp AT TIME ZONE 'UTC'
                                WHEN key_type = 'timestamp'::regtype THEN trim(BOTH '''' FROM lo)::timestamp AT TIME ZONE 'UTC'
                                ELSE trim(BOTH '''' FROM lo)::timestamptz END;
            upper_bound := CASE WHEN hi = 'MAXVALUE' THEN NULL
                                WHEN key_type = 'date'::regtype THEN (trim(BOTH '''' FROM hi)::date)::timestamp AT TIME ZONE 'UTC'
                                WHEN key_type = 'timestamp'::regtype THEN trim(BOTH '''' FROM hi)::timestamp AT TIME ZONE 'UTC'
                                ELSE trim(BOTH '''' FROM hi)::timestamptz END;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
