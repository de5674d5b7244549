-- trackschema.partition_ensure(months_ahead, only_parent): make sure every table
-- partitioned by trackschema has a partition for each month from the current one up to
-- `months_ahead` months ahead (NULL: the table's own setting in
-- trackschema.partitioned_tables), filling any gap after its newest partition, and drain
-- its default partition (if it has one) by creating the monthly partitions its rows
-- belong to. Returns one row per partition created. Idempotent: a second call creates
-- nothing. Safe for a scheduler: `SELECT * FROM trackschema.partition_ensure();`
-- Each partition is added with LIKE + ATTACH (SHARE UPDATE EXCLUSIVE on the parent, so
-- reads and writes go on); set lock_timeout to bound the wait for that lock.
CREATE OR REPLACE FUNCTION trackschema.partition_ensure(months_ahead integer DEFAULT NULL, only_parent regclass DEFAULT NULL)
RETURNS TABLE (parent text, partition text, lower_bound timestamptz, upper_bound timestamptz, rows_moved bigint)
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $fn$
DECLARE
    reg record;
    p regclass;
    ahead integer;
    this_month timestamptz := date_trunc('month', now());
    target timestamptz;
    newest timestamptz;
    m timestamptz;
    dflt regclass;
    key_expr text;
    made record;
BEGIN
    IF months_ahead IS NOT NULL AND months_ahead < 0 THEN
        RAISE EXCEPTION 'months_ahead must be 0 or more, not %', months_ahead USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR reg IN SELECT t.* FROM trackschema.partitioned_tables t WHERE t.state = 'partitioned' ORDER BY t.parent_schema, t.parent_name LOOP
        p := to_regclass(format('%I.%I', reg.parent_schema, reg.parent_name));
        CONTINUE WHEN p IS NULL OR (only_parent IS NOT NULL AND p <> only_parent);
        ahead := coalesce(months_ahead, reg.months_ahead);
        target := this_month + make_interval(months => ahead + 1);
        SELECT max(b.upper_bound) INTO newest FROM trackschema.partition_bounds(p) b WHERE NOT b.is_default;
        m := least(this_month, coalesce(newest, this_month));
        WHILE m < target LOOP
            IF NOT EXISTS (SELECT 1 FROM trackschema.partition_bounds(p) b
                            WHERE NOT b.is_default
                              AND (b.lower_bound IS NULL OR b.lower_bound < m + interval '1 month')
                              AND (b.upper_bound IS NULL OR b.upper_bound > m)) THEN
                SELECT * INTO made FROM trackschema.partition_create(p, m, m + interval '1 month');
                parent := p::text; partition := made.partition_name; lower_bound := m;
                upper_bound := m + interval '1 month'; rows_moved := made.rows_moved;
                RETURN NEXT;
            END IF;
            m := m + interval '1 month';
        END LOOP;

        SELECT b.partition INTO dflt FROM trackschema.partition_bounds(p) b WHERE b.is_default;
        CONTINUE WHEN dflt IS NULL;
        SELECT CASE a.atttypid::regtype
                   WHEN 'timestamp with time zone'::regtype THEN quote_ident(a.attname)
                   WHEN 'timestamp without time zone'::regtype THEN quote_ident(a.attname) || ' AT TIME ZONE ''UTC'''
                   ELSE quote_ident(a.attname) || '::timestamp AT TIME ZONE ''UTC''' END
          INTO key_expr
          FROM pg_partitioned_table pt JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
         WHERE pt.partrelid = p;
        FOR m IN EXECUTE format('SELECT DISTINCT date_trunc(''month'', %s) FROM %s WHERE %s IS NOT NULL ORDER BY 1', key_expr, dflt, key_expr) LOOP
            CONTINUE WHEN EXISTS (SELECT 1 FROM trackschema.partition_bounds(p) b
                                   WHERE NOT b.is_default
                                     AND (b.lower_bound IS NULL OR b.lower_bound < m + interval '1 month')
                                     AND (b.upper_bound IS NULL OR b.upper_bound > m));
            SELECT * INTO made FROM trackschema.partition_create(p, m, m + interval '1 month');
            parent := p::text; partition := made.partition_name; lower_bound := m;
            upper_bound := m + interval '1 month'; rows_moved := made.rows_moved;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END
$fn$;
