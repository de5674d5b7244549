-- trackschema.partition_unconvert(tbl, ...): give back a plain table T for a table that
-- trackschema partitioned, keeping every row of every attached partition.
--
-- The partition that becomes the plain table is the history partition (the original
-- table), or the oldest partition if the history partition was retired. Under one
-- ACCESS EXCLUSIVE lock on T (waited for with step_lock_timeout, retried `attempts`
-- times), in one transaction: every partition is detached; the rows of every other
-- partition are copied into it and those partitions dropped; it takes the name T, the
-- original primary key (from the prebuilt unique index <partition>_restore_pkey, or
-- built here for a small table), the parent's index names, triggers (same enabled state),
-- policies and RLS flags, grants, owner and comment; plain views are repointed to it;
-- the partitioned table is dropped.
--
-- Lock cost: writers and readers of T wait for the whole transaction. The catalog work
-- takes milliseconds; the copy takes as long as inserting the rows of the partitions
-- other than the history one (monthly partitions made since the conversion) together
-- with their index entries: roughly 20-45k rows per second on a small machine. Partitions
-- already retired (detached into the archive schema, or dropped) are not brought back.
-- Fails, changing nothing, when two rows of different partitions share a primary key
-- value that the original key (without the partition key) no longer allows.
CREATE OR REPLACE FUNCTION trackschema.partition_unconvert(
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
    qual text;
    base regclass;
    base_rel name;
    restore_idx text;
    restore_ok boolean;
    small boolean;
    cols text;
    owner_name name;
    tbl_comment text;
    rls boolean;
    force_rls boolean;
    parts regclass[];
    part regclass;
    moved bigint := 0;
    cnt bigint;
    attempt integer := 0;
    old_name text;
    r record;
    stmt text;
    i integer;
    idx_from name[] := '{}';
    idx_to name[] := '{}';
    trg_defs text[] := '{}';
    trg_states text[] := '{}';
    trg_names name[] := '{}';
    pol_defs text[] := '{}';
    view_defs text[] := '{}';
    grant_defs text[] := '{}';
    base_pk name;
BEGIN
    SELECT n.nspname, c.relname, c.relkind INTO nsp, rel, kind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    SELECT * INTO reg FROM trackschema.partitioned_tables r0 WHERE r0.parent_schema = nsp AND r0.parent_name = rel;
    IF reg.parent_name IS NULL THEN
        RETURN format('%s was not partitioned by trackschema: nothing to do', tbl);
    END IF;
    qual := format('%I.%I', nsp, rel);
    PERFORM set_config('lock_timeout', (extract(epoch FROM step_lock_timeout) * 1000)::bigint || 'ms', true);

    IF kind = 'r' THEN
        -- A conversion that never got past its preparation: take its traces away.
        LOOP
            BEGIN
                EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', tbl, left(rel, 47) || '_partition_bound');
                EXECUTE format('DROP INDEX IF EXISTS %I.%I', nsp, left(reg.history_partition, 58) || '_pkey');
                DELETE FROM trackschema.partitioned_tables r1 WHERE r1.parent_schema = nsp AND r1.parent_name = rel;
                EXIT;
            EXCEPTION WHEN lock_not_available THEN
                attempt := attempt + 1;
                IF attempt >= attempts THEN
                    RAISE EXCEPTION 'could not lock % within % in % attempts', qual, step_lock_timeout, attempts
                        USING ERRCODE = 'lock_not_available', HINT = 'a long transaction holds a lock on the table: end it, or retry later';
                END IF;
            END;
            PERFORM pg_sleep(least(2.0, 0.05 * power(2, attempt)) * (0.5 + random() / 2));
        END LOOP;
        RETURN format('%s was only prepared: check and index removed', qual);
    END IF;

    LOOP
        BEGIN
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', tbl);
            SELECT b.partition INTO base
              FROM trackschema.partition_bounds(tbl) b
             ORDER BY (b.partition = to_regclass(format('%I.%I', nsp, reg.history_partition))) DESC, b.is_default, b.lower_bound NULLS FIRST
             LIMIT 1;
            IF base IS NULL THEN
                RAISE EXCEPTION 'cannot turn % back into a plain table: it has no partition left', qual
                    USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'create one with trackschema.partition_ensure() first';
            END IF;
            SELECT c.relname INTO base_rel FROM pg_class c WHERE c.oid = base;
            restore_idx := left(base_rel, 50) || '_restore_pkey';
            SELECT array_agg(b.partition ORDER BY b.lower_bound NULLS FIRST) INTO parts
              FROM trackschema.partition_bounds(tbl) b WHERE b.partition <> base;

            -- What the parent has, read while it still has the name T.
            SELECT pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'), c.relrowsecurity, c.relforcerowsecurity
              INTO owner_name, tbl_comment, rls, force_rls
              FROM pg_class c WHERE c.oid = tbl;
            -- base index -> name of the parent index it is attached to
            SELECT coalesce(array_agg(ci.relname ORDER BY ci.relname), '{}'), coalesce(array_agg(pi.relname ORDER BY ci.relname), '{}')
              INTO idx_from, idx_to
              FROM pg_index bi
              JOIN pg_class ci ON ci.oid = bi.indexrelid
              JOIN pg_inherits ih ON ih.inhrelid = bi.indexrelid
              JOIN pg_class pi ON pi.oid = ih.inhparent
             WHERE bi.indrelid = base;
            SELECT c.conname INTO base_pk FROM pg_constraint c WHERE c.conrelid = base AND c.contype = 'p';
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

            -- The original primary key needs a unique index on the base partition.
            IF reg.original_pkey_columns IS NOT NULL AND NOT (reg.key_column = ANY (reg.original_pkey_columns)) THEN
                SELECT i.indisvalid AND i.indisunique
                       AND (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                              JOIN pg_attribute a ON a.attrelid = base AND a.attnum = k.attnum) = reg.original_pkey_columns
                  INTO restore_ok
                  FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid
                 WHERE i.indrelid = base AND ic.relname = restore_idx;
                IF restore_ok IS NULL OR NOT restore_ok THEN
                    EXECUTE format('SELECT count(*) <= %s FROM (SELECT 1 FROM %s LIMIT %s) s', inline_build_limit, tbl, inline_build_limit + 1) INTO small;
                    IF NOT small THEN
                        RAISE EXCEPTION 'cannot turn % back into a plain table: the unique index % has not been built, and building it here would block writes', qual, restore_idx
                            USING ERRCODE = 'object_not_in_prerequisite_state',
                                  HINT = format('run the downgrade online, or first run each statement of SELECT * FROM trackschema.partition_prebuild_sql(%L) outside a transaction', qual);
                    END IF;
                    IF restore_ok IS NOT NULL THEN
                        EXECUTE format('DROP INDEX %I.%I', nsp, restore_idx);
                    END IF;
                    EXECUTE format('CREATE UNIQUE INDEX %I ON %s (%s)', restore_idx, base,
                                   (SELECT string_agg(quote_ident(col), ', ' ORDER BY ord) FROM unnest(reg.original_pkey_columns) WITH ORDINALITY AS u(col, ord)));
                END IF;
            END IF;

            -- Detach everything; fold the other partitions into the base.
            EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', tbl, base);
            SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
              FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
            FOREACH part IN ARRAY coalesce(parts, '{}') LOOP
                EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', tbl, part);
                BEGIN
                    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s', base, cols, cols, part);
                EXCEPTION WHEN unique_violation THEN
                    RAISE EXCEPTION 'cannot turn % back into a plain table: rows of % and % share a key that % (%) would have to make unique',
                                    qual, base, part, reg.original_pkey, array_to_string(reg.original_pkey_columns, ', ')
                        USING ERRCODE = 'unique_violation', HINT = 'remove or re-key the duplicates, then downgrade again';
                END;
                GET DIAGNOSTICS cnt = ROW_COUNT;
                moved := moved + cnt;
                EXECUTE format('DROP TABLE %s', part);
            END LOOP;

            -- Base takes T's place.
            old_name := left(rel, 50) || '_partitioned';
            EXECUTE format('ALTER TABLE %s RENAME TO %I', tbl, old_name);
            EXECUTE format('ALTER TABLE %s RENAME TO %I', base, rel);
            FOREACH stmt IN ARRAY view_defs LOOP
                EXECUTE stmt;
            END LOOP;
            EXECUTE format('DROP TABLE %s', tbl);
            IF reg.original_pkey_columns IS NOT NULL AND NOT (reg.key_column = ANY (reg.original_pkey_columns)) THEN
                IF base_pk IS NOT NULL THEN
                    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', base, base_pk);
                END IF;
                EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I', base, reg.original_pkey, restore_idx);
            ELSIF reg.original_pkey_columns IS NULL AND base_pk IS NOT NULL THEN
                EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', base, base_pk);
            END IF;
            FOR i IN 1 .. coalesce(array_length(idx_from, 1), 0) LOOP
                -- the widened primary key index was replaced above
                CONTINUE WHEN idx_from[i] = base_pk AND (reg.original_pkey_columns IS NULL OR NOT (reg.key_column = ANY (reg.original_pkey_columns)));
                EXECUTE format('ALTER INDEX %I.%I RENAME TO %I', nsp, idx_from[i], idx_to[i]);
            END LOOP;
            FOR i IN 1 .. coalesce(array_length(trg_defs, 1), 0) LOOP
                EXECUTE trg_defs[i];
                IF trg_states[i] <> 'O' THEN
                    EXECUTE format('ALTER TABLE %s %s TRIGGER %I', base,
                                   CASE trg_states[i] WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'ENABLE ALWAYS' END, trg_names[i]);
                END IF;
            END LOOP;
            FOR r IN SELECT p.polname FROM pg_policy p WHERE p.polrelid = base LOOP
                EXECUTE format('DROP POLICY %I ON %s', r.polname, base);
            END LOOP;
            FOREACH stmt IN ARRAY pol_defs || grant_defs LOOP
                EXECUTE stmt;
            END LOOP;
            EXECUTE format('ALTER TABLE %s %s ROW LEVEL SECURITY', base, CASE WHEN rls THEN 'ENABLE' ELSE 'DISABLE' END);
            EXECUTE format('ALTER TABLE %s %s ROW LEVEL SECURITY', base, CASE WHEN force_rls THEN 'FORCE' ELSE 'NO FORCE' END);
            IF owner_name IS DISTINCT FROM pg_get_userbyid((SELECT c.relowner FROM pg_class c WHERE c.oid = base)) THEN
                EXECUTE format('ALTER TABLE %s OWNER TO %I', base, owner_name);
            END IF;
            EXECUTE format('COMMENT ON TABLE %s IS %L', base, tbl_comment);
            DELETE FROM trackschema.partitioned_tables r1 WHERE r1.parent_schema = nsp AND r1.parent_name = rel;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            attempt := attempt + 1;
            IF attempt >= attempts THEN
                RAISE EXCEPTION 'could not lock % within % in % attempts to turn it back into a plain table', qual, step_lock_timeout, attempts
                    USING ERRCODE = 'lock_not_available', HINT = 'a long transaction holds a lock on the table: end it, or retry later';
            END IF;
        END;
        PERFORM pg_sleep(least(2.0, 0.05 * power(2, attempt)) * (0.5 + random() / 2));
    END LOOP;
    RETURN format('%s is a plain table again (%s rows folded in from other partitions)', qual, moved);
END
$fn$;
