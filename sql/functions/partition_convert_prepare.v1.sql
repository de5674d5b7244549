-- trackschema.partition_convert_prepare(tbl, key_column, ...): step 1 of turning a plain,
-- populated table into a monthly range-partitioned one without a long lock.
--
-- Checks that the conversion can work (and says exactly what is in the way when not:
-- foreign keys that reference the table, identity columns, unique indexes without the
-- partition key, materialized views, invalid indexes, inheritance), picks the boundary B
-- of the future history partition (the start of next month, or of the month after the
-- newest row if that is later) and adds CHECK (key IS NOT NULL AND key < B) NOT VALID.
-- NOT VALID makes that an instant catalog change, but it still needs an ACCESS EXCLUSIVE
-- lock for a moment: the wait for it is bounded by step_lock_timeout (short, because
-- writers queue behind a waiting ACCESS EXCLUSIVE request) and retried `attempts` times.
-- From then on rows dated at or after B are refused by the old table until the swap.
-- Records the conversion in trackschema.partitioned_tables (state 'preparing').
-- Idempotent: a rerun keeps a constraint whose boundary still fits; on a table already
-- converted it does nothing. Returns B. With check_only it only checks (returns NULL):
-- the revision checks every declared table before it changes any.
CREATE OR REPLACE FUNCTION trackschema.partition_convert_prepare(
    tbl regclass,
    key_column name,
    months_ahead integer DEFAULT 3,
    default_partition boolean DEFAULT false,
    step_lock_timeout interval DEFAULT '500ms',
    attempts integer DEFAULT 20,
    check_only boolean DEFAULT false)
RETURNS timestamptz
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $fn$
DECLARE
    nsp name;
    rel name;
    kind "char";
    key_type regtype;
    key_attnum smallint;
    reg trackschema.partitioned_tables;
    problems text[] := '{}';
    found_list text;
    hist text;
    cname text;
    newest timestamptz;
    boundary timestamptz;
    key_expr text;
    attempt integer := 0;
BEGIN
    SELECT n.nspname, c.relname, c.relkind INTO nsp, rel, kind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    SELECT * INTO reg FROM trackschema.partitioned_tables r WHERE r.parent_schema = nsp AND r.parent_name = rel;
    IF kind = 'p' THEN
        IF reg.state = 'partitioned' THEN
            RETURN reg.history_upper;
        END IF;
        RAISE EXCEPTION 'cannot partition %: it is already partitioned, but not by trackschema', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'drop it from the partition declaration (TRACKSCHEMA_PARTITIONED_TABLES)';
    ELSIF kind IS DISTINCT FROM 'r' THEN
        RAISE EXCEPTION 'cannot partition %: it is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;

    SELECT a.atttypid::regtype, a.attnum INTO key_type, key_attnum
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF key_type IS NULL THEN
        RAISE EXCEPTION 'cannot partition %: it has no column %', tbl, key_column
            USING ERRCODE = 'undefined_column', HINT = 'fix the partition declaration (TRACKSCHEMA_PARTITIONED_TABLES=table:column)';
    END IF;
    IF key_type NOT IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'cannot partition % by %: monthly partitions need a timestamptz, timestamp or date column, not %', tbl, key_column, key_type
            USING ERRCODE = 'datatype_mismatch';
    END IF;

    SELECT string_agg(format('%I on %s', c.conname, c.conrelid::regclass), ', ' ORDER BY c.conname) INTO found_list
      FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = tbl;
    IF found_list IS NOT NULL THEN
        problems := problems || format('foreign keys reference it (%s); a partitioned table can only be referenced through a key that includes %I', found_list, key_column);
    END IF;
    SELECT string_agg(format('%I', c.conname), ', ') INTO found_list
      FROM pg_constraint c WHERE c.conrelid = tbl AND c.contype = 'f' AND NOT c.convalidated;
    IF found_list IS NOT NULL THEN
        problems := problems || format('foreign keys %s are NOT VALID (validate them first)', found_list);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = tbl OR i.inhparent = tbl) THEN
        problems := problems || 'it takes part in table inheritance'::text;
    END IF;
    SELECT string_agg(quote_ident(a.attname), ', ') INTO found_list
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity <> '';
    IF found_list IS NOT NULL THEN
        problems := problems || format('identity columns (%s) would get a new sequence on the partitioned table', found_list);
    END IF;
    SELECT string_agg(DISTINCT v.oid::regclass::text, ', ') INTO found_list
      FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
     WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = tbl
       AND v.oid <> tbl AND v.relkind = 'm';
    IF found_list IS NOT NULL THEN
        problems := problems || format('materialized views depend on it (%s); drop them first and recreate them after', found_list);
    END IF;
    SELECT string_agg(i.indexrelid::regclass::text, ', ') INTO found_list
      FROM pg_index i WHERE i.indrelid = tbl AND i.indisunique AND NOT i.indisprimary AND NOT (key_attnum = ANY (i.indkey::int2[]));
    IF found_list IS NOT NULL THEN
        problems := problems || format('unique indexes %s do not include %I (a partitioned table can only enforce uniqueness that includes its key)', found_list, key_column);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = tbl AND c.contype = 'x') THEN
        problems := problems || 'it has exclusion constraints'::text;
    END IF;
    hist := left(rel, 55) || '_history';
    SELECT string_agg(i.indexrelid::regclass::text, ', ') INTO found_list
      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = tbl AND NOT i.indisvalid AND ic.relname <> left(hist, 58) || '_pkey';
    IF found_list IS NOT NULL THEN
        problems := problems || format('invalid indexes %s (drop or rebuild them first)', found_list);
    END IF;
    IF to_regclass(format('%I.%I', nsp, hist)) IS NOT NULL THEN
        problems := problems || format('a table named %I already exists', hist);
    END IF;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'cannot partition %: %', tbl, array_to_string(problems, '; ')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'fix these, or leave the table out of the partition declaration (TRACKSCHEMA_PARTITIONED_TABLES)';
    END IF;
    IF check_only THEN
        RETURN NULL;
    END IF;

    key_expr := CASE key_type
                    WHEN 'timestamp with time zone'::regtype THEN quote_ident(key_column)
                    WHEN 'timestamp without time zone'::regtype THEN quote_ident(key_column) || ' AT TIME ZONE ''UTC'''
                    ELSE quote_ident(key_column) || '::timestamp AT TIME ZONE ''UTC''' END;
    EXECUTE format('SELECT max(%s) FROM %s', key_expr, tbl) INTO newest;
    boundary := greatest(date_trunc('month', now()) + interval '1 month',
                         date_trunc('month', newest) + interval '1 month');
    cname := left(rel, 47) || '_partition_bound';

    IF reg.state = 'preparing' AND reg.history_upper >= boundary
       AND EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = tbl AND c.conname = cname) THEN
        RETURN reg.history_upper;
    END IF;

    PERFORM set_config('lock_timeout', (extract(epoch FROM step_lock_timeout) * 1000)::bigint || 'ms', true);
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %s %sADD CONSTRAINT %I CHECK (%I IS NOT NULL AND %I < %s) NOT VALID', tbl,
                           CASE WHEN EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = tbl AND c.conname = cname)
                                THEN format('DROP CONSTRAINT %I, ', cname) ELSE '' END,
                           cname, key_column, key_column, trackschema.partition_bound_literal(key_type, boundary));
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            attempt := attempt + 1;
            IF attempt >= attempts THEN
                RAISE EXCEPTION 'could not lock % within % in % attempts to add its partition-bound check', tbl, step_lock_timeout, attempts
                    USING ERRCODE = 'lock_not_available', HINT = 'a long transaction holds a lock on the table: end it, or retry later';
            END IF;
        END;
        PERFORM pg_sleep(least(2.0, 0.05 * power(2, attempt)) * (0.5 + random() / 2));
    END LOOP;

    INSERT INTO trackschema.partitioned_tables AS r
           (parent_schema, parent_name, key_column, months_ahead, default_partition, history_partition, history_upper, state)
    VALUES (nsp, rel, key_column, months_ahead, default_partition, hist, boundary, 'preparing')
    ON CONFLICT (parent_schema, parent_name) DO UPDATE
       SET key_column = EXCLUDED.key_column, months_ahead = EXCLUDED.months_ahead,
           default_partition = EXCLUDED.default_partition, history_partition = EXCLUDED.history_partition,
           history_upper = EXCLUDED.history_upper, state = 'preparing';
    RETURN boundary;
END
$fn$;
