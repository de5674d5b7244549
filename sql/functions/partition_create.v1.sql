-- trackschema.partition_create(parent, lower_bound, upper_bound): add the partition
-- [lower_bound, upper_bound) to a range-partitioned table; returns its name and how many
-- rows it took over from the default partition.
--
-- Locks: the new table is created empty with LIKE and then ATTACHed, which takes only
-- SHARE UPDATE EXCLUSIVE on the parent (reads and writes go on). CREATE TABLE ...
-- PARTITION OF would take ACCESS EXCLUSIVE on the parent. When the parent has a default
-- partition, ATTACH also locks the default partition ACCESS EXCLUSIVE and scans it;
-- rows of the new range sitting in the default partition are moved into the new
-- partition first, in this same transaction (DELETE ... RETURNING feeding the INSERT),
-- so none is lost or seen twice. Callers bound the waits with lock_timeout.
-- Partition names: <parent>_pYYYY_MM for a calendar month, else <parent>_pYYYY_MM_DD.
CREATE OR REPLACE FUNCTION trackschema.partition_create(parent regclass, lower_bound timestamptz, upper_bound timestamptz)
RETURNS TABLE (partition_name text, rows_moved bigint)
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $fn$
DECLARE
    nsp name;
    rel name;
    key_col name;
    key_type regtype;
    part_name text;
    part regclass;
    dflt regclass;
    cols text;
    moved bigint := 0;
BEGIN
    IF lower_bound >= upper_bound THEN
        RAISE EXCEPTION 'empty partition range [%, %)', lower_bound, upper_bound USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT n.nspname, c.relname, a.attname, a.atttypid::regtype INTO nsp, rel, key_col, key_type
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_partitioned_table pt ON pt.partrelid = c.oid AND pt.partstrat = 'r' AND pt.partnatts = 1
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0]
     WHERE c.oid = parent;
    IF key_col IS NULL THEN
        RAISE EXCEPTION '% is not range-partitioned on one column', parent USING ERRCODE = 'wrong_object_type';
    END IF;
    part_name := left(rel, 52) || '_p' || to_char(lower_bound, CASE WHEN lower_bound = date_trunc('month', lower_bound) THEN 'YYYY_MM' ELSE 'YYYY_MM_DD' END);
    IF to_regclass(format('%I.%I', nsp, part_name)) IS NOT NULL THEN
        RAISE EXCEPTION 'cannot create partition %.%: a table of that name exists', nsp, part_name
            USING ERRCODE = 'duplicate_table', HINT = 'rename or drop it (a retired partition lives in the archive schema, not here)';
    END IF;

    EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION)',
                   nsp, part_name, parent);
    part := format('%I.%I', nsp, part_name)::regclass;

    SELECT i.inhrelid::regclass INTO dflt
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
    IF dflt IS NOT NULL THEN
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
          FROM pg_attribute WHERE attrelid = parent AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', dflt);
        EXECUTE format('WITH moved AS (DELETE FROM %1$s WHERE %2$I >= %3$s AND %2$I < %4$s RETURNING %5$s) INSERT INTO %6$s (%5$s) SELECT %5$s FROM moved',
                       dflt, key_col, trackschema.partition_bound_literal(key_type, lower_bound),
                       trackschema.partition_bound_literal(key_type, upper_bound), cols, part);
        GET DIAGNOSTICS moved = ROW_COUNT;
    END IF;

    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)', parent, part,
                   trackschema.partition_bound_literal(key_type, lower_bound), trackschema.partition_bound_literal(key_type, upper_bound));
    partition_name := part::text;
    rows_moved := moved;
    RETURN NEXT;
END
$fn$;
