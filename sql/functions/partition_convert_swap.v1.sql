-- trackschema.partition_convert_swap(tbl, ...): the last step, the only one that blocks writers,
-- and only for the catalog work of one short transaction (milliseconds, no scan, no
-- index build). Under one ACCESS EXCLUSIVE lock on the prepared table T:
--   * T becomes <T>_history; its indexes are renamed <T>_history_<index>; its primary
--     key is replaced by the prebuilt unique index on (primary key columns, key) (built
--     here only when the table is small; a large table without it is refused with the
--     statement to run first); its own triggers are taken off (they move to the parent);
--   * a new partitioned T is created with the same columns, defaults, generated columns,
--     storage and column comments, the same CHECK constraints, the primary key widened by
--     the partition key, the same indexes (same names), foreign keys, row and statement
--     triggers (same names, same enabled state), row-level security policies and flags,
--     grants, owner and table comment; plain views that read T are repointed to it;
--   * <T>_history is attached as FOR VALUES FROM (MINVALUE) TO (B): the validated check
--     from step 1 proves the partition constraint, so ATTACH does not scan, and every
--     index of the parent finds its twin on the history table, so none is built;
--   * monthly partitions from B to `months_ahead` months after the current one are
--     added, and the default partition when the declaration asks for one.
-- A statement that was waiting for T when the swap commits finds the new T by name and
-- writes into it. The wait for the lock is bounded by step_lock_timeout and retried
-- `attempts` times with backoff. Idempotent: does nothing once T is partitioned.
CREATE OR REPLACE FUNCTION trackschema.partition_convert_swap(
    tbl regclass,
    step_lock_timeout interval DEFAULT '500ms',
    attempts integer DEFAULT 20,
    inline_build_limit bigint DEFAULT 50000)
RETURNS text
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $fn$
DECLARE
    nsp name;
    rel name;
    kind "char";
    reg trackschema.partitioned_tables;
    key_type regtype;
    qual text;
    hist text;
    qhist text;
    cname text;
    pk_name name;
    pk_cols name[];
    new_pk_cols name[];
    prebuilt text;
    prebuilt_ok boolean;
    small boolean;
    owner_name name;
    tbl_comment text;
    rls boolean;
    force_rls boolean;
    parent regclass;
    attempt integer := 0;
    r record;
    new_name text;
    n integer;
    m timestamptz;
    target timestamptz;
    idx_defs text[] := '{}';
    con_defs text[] := '{}';
    trg_defs text[] := '{}';
    trg_states text[] := '{}';
    trg_names name[] := '{}';
    pol_defs text[] := '{}';
    view_defs text[] := '{}';
    grant_defs text[] := '{}';
    stmt text;
    i integer;
BEGIN
    SELECT n.nspname, c.relname, c.relkind INTO nsp, rel, kind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    SELECT * INTO reg FROM trackschema.partitioned_tables r0 WHERE r0.parent_schema = nsp AND r0.parent_name = rel;
    IF reg.parent_name IS NULL THEN
        RAISE EXCEPTION 'cannot swap %: it was not prepared', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'run trackschema.partition_convert_prepare first';
    END IF;
    IF kind = 'p' AND reg.state = 'partitioned' THEN
        RETURN format('%s is already partitioned', tbl);
    END IF;
    qual := format('%I.%I', nsp, rel);
    hist := reg.history_partition;
    qhist := format('%I.%I', nsp, hist);
    cname := left(rel, 47) || '_partition_bound';
    prebuilt := left(hist, 58) || '_pkey';
    IF NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = tbl AND c.conname = cname AND c.convalidated) THEN
        RAISE EXCEPTION 'cannot swap %: its partition-bound check % is missing or not validated', tbl, cname
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'run trackschema.partition_convert_validate first';
    END IF;
    SELECT a.atttypid::regtype INTO key_type FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = reg.key_column;

    PERFORM set_config('lock_timeout', (extract(epoch FROM step_lock_timeout) * 1000)::bigint || 'ms', true);
    LOOP
        BEGIN
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', tbl);

            -- What the old table has, read before anything is renamed (definitions then name T).
            SELECT c.conname, array_agg(a.attname ORDER BY k.ord) INTO pk_name, pk_cols
              FROM pg_constraint c
              CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             WHERE c.conrelid = tbl AND c.contype = 'p'
             GROUP BY c.conname;
            new_pk_cols := CASE WHEN pk_cols IS NULL THEN NULL
                                WHEN reg.key_column = ANY (pk_cols) THEN pk_cols
                                ELSE pk_cols || reg.key_column END;
            SELECT pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'), c.relrowsecurity, c.relforcerowsecurity
              INTO owner_name, tbl_comment, rls, force_rls
              FROM pg_class c WHERE c.oid = tbl;
            -- indexes that are not constraints (constraint indexes come with their constraint)
            SELECT coalesce(array_agg(pg_get_indexdef(i.indexrelid) ORDER BY ic.relname), '{}') INTO idx_defs
              FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
             WHERE i.indrelid = tbl AND ic.relname <> prebuilt
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = tbl);
            -- CHECK, UNIQUE and FOREIGN KEY constraints (not the bound check, not the primary key)
            SELECT coalesce(array_agg(format('ALTER TABLE %s ADD CONSTRAINT %I %s', qual, c.conname, pg_get_constraintdef(c.oid))
                                      ORDER BY CASE c.contype WHEN 'c' THEN 0 WHEN 'u' THEN 1 ELSE 2 END, c.conname), '{}')
              INTO con_defs
              FROM pg_constraint c
             WHERE c.conrelid = tbl AND c.contype IN ('c', 'u', 'f') AND c.conname <> cname;
            SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}'),
                   coalesce(array_agg(t.tgenabled::text ORDER BY t.tgname), '{}'),
                   coalesce(array_agg(t.tgname ORDER BY t.tgname), '{}')
              INTO trg_defs, trg_states, trg_names
              FROM pg_trigger t WHERE t.tgrelid = tbl AND NOT t.tgisinternal;
            SELECT coalesce(array_agg(
                       format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, qual,
                              CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                              CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                              (SELECT string_agg(CASE WHEN role_oid = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(role_oid)) END, ', ')
                                 FROM unnest(p.polroles) AS u(role_oid)),
                              CASE WHEN p.polqual IS NOT NULL THEN ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')' ELSE '' END,
                              CASE WHEN p.polwithcheck IS NOT NULL THEN ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')' ELSE '' END)
                       ORDER BY p.polname), '{}')
              INTO pol_defs
              FROM pg_policy p WHERE p.polrelid = tbl;
            SELECT coalesce(array_agg(format('GRANT %s ON %s TO %s%s', a.privilege_type, qual,
                                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                                             CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)), '{}')
              INTO grant_defs
              FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS a
             WHERE c.oid = tbl AND a.grantee <> c.relowner;
            SELECT coalesce(array_agg(format('CREATE OR REPLACE VIEW %s%s AS %s', v.oid::regclass,
                                             CASE WHEN v.reloptions IS NOT NULL THEN ' WITH (' || array_to_string(v.reloptions, ', ') || ')' ELSE '' END,
                                             pg_get_viewdef(v.oid)) ORDER BY v.oid), '{}')
              INTO view_defs
              FROM pg_class v
             WHERE v.relkind = 'v' AND v.oid IN (
                   SELECT r2.ev_class FROM pg_depend d JOIN pg_rewrite r2 ON r2.oid = d.objid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = tbl);

            -- The primary key of the history partition: (key columns, partition key).
            IF new_pk_cols IS NOT NULL AND new_pk_cols <> pk_cols THEN
                SELECT i.indisvalid AND i.indisunique
                       AND (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                              JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = k.attnum) = new_pk_cols
                  INTO prebuilt_ok
                  FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid
                 WHERE i.indrelid = tbl AND ic.relname = prebuilt;
                IF prebuilt_ok IS NULL OR NOT prebuilt_ok THEN
                    EXECUTE format('SELECT count(*) <= %s FROM (SELECT 1 FROM %s LIMIT %s) s', inline_build_limit, tbl, inline_build_limit + 1) INTO small;
                    IF NOT small THEN
                        RAISE EXCEPTION 'cannot swap %: the unique index % on (%) has not been built, and building it here would block writes', tbl, prebuilt, array_to_string(new_pk_cols, ', ')
                            USING ERRCODE = 'object_not_in_prerequisite_state',
                                  HINT = format('run the upgrade online, or first run each statement of SELECT * FROM trackschema.partition_prebuild_sql(%L) outside a transaction', qual);
                    END IF;
                    IF prebuilt_ok IS NOT NULL THEN
                        EXECUTE format('DROP INDEX %I.%I', nsp, prebuilt);
                    END IF;
                    EXECUTE format('CREATE UNIQUE INDEX %I ON %s (%s)', prebuilt, tbl,
                                   (SELECT string_agg(quote_ident(col), ', ' ORDER BY ord) FROM unnest(new_pk_cols) WITH ORDINALITY AS u(col, ord)));
                END IF;
            END IF;

            -- T becomes the history table.
            EXECUTE format('ALTER TABLE %s RENAME TO %I', tbl, hist);
            FOR r IN SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                      WHERE i.indrelid = tbl AND ic.relname <> prebuilt
                        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype = 'p' AND new_pk_cols <> pk_cols)
                      ORDER BY ic.relname LOOP
                new_name := left(hist || '_' || r.relname, 63);
                n := 1;
                WHILE to_regclass(format('%I.%I', nsp, new_name)) IS NOT NULL LOOP
                    new_name := left(hist || '_' || r.relname, 60 - length(n::text)) || '_' || n;
                    n := n + 1;
                END LOOP;
                EXECUTE format('ALTER INDEX %I.%I RENAME TO %I', nsp, r.relname, new_name);
            END LOOP;
            FOREACH stmt IN ARRAY trg_names LOOP
                EXECUTE format('DROP TRIGGER %I ON %s', stmt, tbl);
            END LOOP;
            FOR r IN SELECT p.polname FROM pg_policy p WHERE p.polrelid = tbl LOOP
                EXECUTE format('DROP POLICY %I ON %s', r.polname, tbl);
            END LOOP;
            IF new_pk_cols IS NOT NULL AND new_pk_cols <> pk_cols THEN
                EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', tbl, pk_name);
                EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I', tbl, prebuilt, prebuilt);
            END IF;

            -- The partitioned T.
            EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS) PARTITION BY RANGE (%I)',
                           qual, tbl, reg.key_column);
            parent := qual::regclass;
            IF owner_name IS DISTINCT FROM current_user THEN
                EXECUTE format('ALTER TABLE %s OWNER TO %I', parent, owner_name);
            END IF;
            IF tbl_comment IS NOT NULL THEN
                EXECUTE format('COMMENT ON TABLE %s IS %L', parent, tbl_comment);
            END IF;
            IF new_pk_cols IS NOT NULL THEN
                EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY (%s)', parent, pk_name,
                               (SELECT string_agg(quote_ident(col), ', ' ORDER BY ord) FROM unnest(new_pk_cols) WITH ORDINALITY AS u(col, ord)));
            END IF;
            FOREACH stmt IN ARRAY con_defs || idx_defs LOOP
                EXECUTE stmt;
            END LOOP;
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (MINVALUE) TO (%s)',
                           parent, tbl, trackschema.partition_bound_literal(key_type, reg.history_upper));
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', tbl, cname);
            FOR i IN 1 .. coalesce(array_length(trg_defs, 1), 0) LOOP
                EXECUTE trg_defs[i];
                IF trg_states[i] <> 'O' THEN
                    EXECUTE format('ALTER TABLE %s %s TRIGGER %I', parent,
                                   CASE trg_states[i] WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'ENABLE ALWAYS' END, trg_names[i]);
                END IF;
            END LOOP;
            FOREACH stmt IN ARRAY pol_defs || grant_defs || view_defs LOOP
                EXECUTE stmt;
            END LOOP;
            IF rls THEN
                EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', parent);
            END IF;
            IF force_rls THEN
                EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', parent);
            END IF;

            -- The months after the history partition, and the default partition if declared.
            m := reg.history_upper;
            target := date_trunc('month', now()) + make_interval(months => reg.months_ahead + 1);
            WHILE m < target LOOP
                PERFORM trackschema.partition_create(parent, m, m + interval '1 month');
                m := m + interval '1 month';
            END LOOP;
            IF reg.default_partition THEN
                EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION)',
                               nsp, left(rel, 55) || '_default', parent);
                EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I DEFAULT', parent, nsp, left(rel, 55) || '_default');
            END IF;

            UPDATE trackschema.partitioned_tables r1
               SET state = 'partitioned', original_pkey = pk_name, original_pkey_columns = pk_cols, converted_at = now()
             WHERE r1.parent_schema = nsp AND r1.parent_name = rel;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            attempt := attempt + 1;
            IF attempt >= attempts THEN
                RAISE EXCEPTION 'could not lock % within % in % attempts to swap in its partitioned table', qual, step_lock_timeout, attempts
                    USING ERRCODE = 'lock_not_available', HINT = 'a long transaction holds a lock on the table: end it, or retry later';
            END IF;
        END;
        PERFORM pg_sleep(least(2.0, 0.05 * power(2, attempt)) * (0.5 + random() / 2));
    END LOOP;
    RETURN format('%s is partitioned by %I; rows before %s stay in %s', qual, reg.key_column, reg.history_upper, qhist);
END
$fn$;
