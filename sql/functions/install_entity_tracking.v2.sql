-- install_entity_tracking(table, entity_column) v2: generate and attach change tracking
-- for one entity table, writing ONE row per change: the `entity_events` row, which is
-- also the outbox that consumers read (docs/design.md#outbox). v1 wrote three rows per
-- change (the event, an activity_log row repeating its who/what/when, an event_queue row).
--
-- Every INSERT, UPDATE and DELETE statement on the table then writes, in the same
-- transaction, one `entity_events` row per changed row: the action, the acting user
-- (current_actor_id(); an unset, empty or malformed app.current_user_id is NULL and never
-- fails the write), for INSERT the new row, for DELETE the old row (from OLD), for UPDATE
-- only the columns that changed (`changed_columns`, their old values in
-- `previous_state`, their new values in `new_state`; `updated_at` is left out, so a row
-- whose only change is updated_at gets an event with no changed columns), and
-- `xid` = pg_current_xact_id(), the writing transaction, by which consumers select what
-- committed between two of their snapshots (consumer_window_events).
--
-- How: three AFTER ... FOR EACH STATEMENT triggers with transition tables
-- (track_insert, track_update, track_delete) call a function generated for this table,
-- `track_<table>_change()`, whose code names the table's columns directly. Comparing
-- columns directly is about ten times cheaper than a generic row-to-jsonb diff; the
-- price is that the function knows the columns the table had when it was generated. A
-- revision that adds or drops a column of a tracked table must call this function again
-- (it replaces the function); `trackschema audit triggers` reports a stale one
-- (`stale_tracking_function`) with that call as the fix. The columns each function was
-- generated for are recorded in trackschema.entity_tracking.
--
-- Two paths, chosen per statement, write the same rows:
--   * one changed row (the usual application write): one small query reads the row
--     (for UPDATE its old and new version, column by column, into variables) and tells
--     whether there is a second row; PL/pgSQL compares the columns; one single-row
--     INSERT ... VALUES follows. Independent of the plan PL/pgSQL caches for the
--     set-based statement per session (plans made for big transition tables).
--   * several rows: one set-based INSERT ... SELECT over the transition tables (no
--     intermediate CTE: the rows go straight into entity_events). For UPDATE each row's
--     changed columns are also a bit mask: the usual row, one changed column, gets its
--     two one-key objects and a constant array (most updates change one column, and
--     concatenating one jsonb object per column cost more than the rest of the diff);
--     more columns take the general path, one object per changed column, concatenated.
-- A statement that changed no row writes nothing.
--
-- UPDATE pairs OLD and NEW rows by position: PostgreSQL appends each updated row's old
-- and new version to the two transition tables together, so the n-th old row and the
-- n-th new row are the same row, whatever happened to its key. The set-based path
-- numbers both scans with row_number() and joins on that number, written as a FULL JOIN
-- (the counts are equal, so it pairs exactly like an inner join) because a full join
-- cannot be a nested loop (a nested loop planned for a small statement and reused on a
-- 100k-row one would compare every pair). Columns whose type has no = operator of its
-- own (json, xml, point...) compare as text.
--
-- Ids are UUIDv7-layout values in write order: 48 bits of Unix milliseconds and, in the
-- 12 bits after the version (RFC 9562's extra clock precision), the fraction of the
-- millisecond, both from clock_timestamp() taken once when the statement's trigger runs;
-- then the variant and 60 bits of the sequence entity_tracking_id_seq (unique, and in
-- write order within a session). Why the statement's clock and not the transaction's
-- now() (which `occurred_at` keeps): a transaction that changes a row another one changed
-- can only do so after that one committed, so its statement's clock is later, and
-- ordering a consumer's window by id gives each row's changes in commit order, whatever
-- the order of the transaction ids (an older transaction may write a row after a younger
-- one committed it).
--
-- The generated function runs with jit = off: a 100k-row statement would otherwise spend
-- a third of a second compiling expressions, and a cached plan made for a big statement
-- would make every later small one compile too.
--
-- Returns the name of the generated function. Safe to call again: it replaces the
-- function and creates only the triggers that are missing.
CREATE OR REPLACE FUNCTION install_entity_tracking(
    p_table regclass,
    p_entity_column name,
    p_ignore_columns name[] DEFAULT ARRAY['updated_at']::name[]
)
RETURNS text
LANGUAGE plpgsql
AS $gen$
DECLARE
    v_schema name;
    v_table name;
    v_qualified text;
    v_function text;
    v_columns name[];
    v_has_type boolean;
    v_col name;
    v_has_eq boolean;
    v_j int := 0;
    v_events text;
    v_entities text;
    v_seq text;
    v_hex_expr text;
    v_actor_fn text;
    v_type_new text;
    v_type_old text;
    v_type_pair text;
    v_pairs text;
    v_flags text := '';
    v_mask text := '';
    v_prev_one text := '';
    v_next_one text := '';
    v_cols_one text := '';
    v_cols_expr text := '';
    v_prev_expr text := '';
    v_next_expr text := '';
    v_row_decl text := '';
    v_row_select text := '';
    v_row_into text := '';
    v_row_diff text := '';
    v_writes text;
    v_body text;
    v_trigger record;
BEGIN
    SELECT n.nspname, c.relname INTO v_schema, v_table
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table AND c.relkind = 'r';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'install_entity_tracking: % is not a plain table', p_table USING ERRCODE = '22023';
    END IF;
    v_qualified := format('%I.%I', v_schema, v_table);
    v_function := format('%I.%I', v_schema, 'track_' || v_table || '_change');

    SELECT array_agg(attname ORDER BY attnum) INTO v_columns
      FROM pg_attribute
     WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped;
    IF NOT p_entity_column = ANY (v_columns) THEN
        RAISE EXCEPTION 'install_entity_tracking: % has no column %', v_qualified, p_entity_column USING ERRCODE = '22023';
    END IF;
    v_has_type := 'entity_type_id' = ANY (v_columns);

    -- Qualified names of what the generated code uses, resolved now.
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_events
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entity_events'::regclass;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_entities
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entities'::regclass;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_seq
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entity_tracking_id_seq'::regclass;
    SELECT format('%I.%I', n.nspname, p.proname) INTO v_actor_fn
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = 'current_actor_id()'::regprocedure;

    -- The 64 bits after the version nibble and the 12 clock-fraction bits: the variant
    -- (binary 10) and 60 bits of the sequence, whose MAXVALUE is 2^60 - 1; OR-ing in the
    -- sign bit makes to_hex() print exactly 16 digits, the first one 8.
    v_hex_expr := format('to_hex(nextval(%L::regclass) | (-9223372036854775808)::int8)', v_seq);

    -- UPDATE. Set-based: the pair source `s` holds the entity (ne), its type (nt) and,
    -- per compared column j (attnum order, ignored columns left out), the old and new
    -- value (o<j>, n<j>) and whether it changed (d<j>). One row: the same values land
    -- in variables v_o<j>/v_n<j> and PL/pgSQL compares them.
    v_pairs := format('n.%I AS ne', p_entity_column) || CASE WHEN v_has_type THEN ', n.entity_type_id AS nt' ELSE '' END;
    FOREACH v_col IN ARRAY v_columns LOOP
        CONTINUE WHEN v_col = ANY (p_ignore_columns);
        v_j := v_j + 1;
        SELECT EXISTS (SELECT 1 FROM pg_operator op WHERE op.oprname = '=' AND op.oprleft = a.atttypid AND op.oprright = a.atttypid)
          INTO v_has_eq
          FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attname = v_col;
        v_pairs := v_pairs || format(', o.%1$I AS o%2$s, n.%1$I AS n%2$s', v_col, v_j);
        v_flags := v_flags || format(CASE WHEN v_has_eq THEN ', o.%1$I IS DISTINCT FROM n.%1$I AS d%2$s'
                                          ELSE ', o.%1$I::text IS DISTINCT FROM n.%1$I::text AS d%2$s' END, v_col, v_j);
        v_cols_expr := v_cols_expr || CASE WHEN v_j > 1 THEN ', ' ELSE '' END
            || format('CASE WHEN s.d%s THEN %L END', v_j, v_col);
        v_prev_expr := v_prev_expr || CASE WHEN v_j > 1 THEN E'\n                   || ' ELSE '' END
            || format('CASE WHEN s.d%1$s THEN jsonb_build_object(%2$L, s.o%1$s) ELSE %3$L::jsonb END', v_j, v_col, '{}');
        v_next_expr := v_next_expr || CASE WHEN v_j > 1 THEN E'\n                   || ' ELSE '' END
            || format('CASE WHEN s.d%1$s THEN jsonb_build_object(%2$L, s.n%1$s) ELSE %3$L::jsonb END', v_j, v_col, '{}');
        IF v_j <= 62 THEN  -- the bit of column j in the mask m, and its one-column results
            v_mask := v_mask || CASE WHEN v_j > 1 THEN ' | ' ELSE '' END || format('(s.d%s::int::int8 << %s)', v_j, v_j - 1);
            v_prev_one := v_prev_one || format(' WHEN %s THEN jsonb_build_object(%L, s.o%s)', (1::int8 << (v_j - 1)), v_col, v_j);
            v_next_one := v_next_one || format(' WHEN %s THEN jsonb_build_object(%L, s.n%s)', (1::int8 << (v_j - 1)), v_col, v_j);
            v_cols_one := v_cols_one || format(' WHEN %s THEN %L::text[]', (1::int8 << (v_j - 1)), ARRAY[v_col]::text[]);
        END IF;
        v_row_decl := v_row_decl || format(E'\n    v_o%1$s %2$s.%3$I%%TYPE;\n    v_n%1$s %2$s.%3$I%%TYPE;', v_j, v_qualified, v_col);
        v_row_select := v_row_select || format(', o.%1$I, n.%1$I', v_col);
        v_row_into := v_row_into || format(', v_o%s, v_n%s', v_j, v_j);
        v_row_diff := v_row_diff || format(
            CASE WHEN v_has_eq THEN E'\n            IF v_o%1$s IS DISTINCT FROM v_n%1$s THEN'
                 ELSE E'\n            IF v_o%1$s::text IS DISTINCT FROM v_n%1$s::text THEN' END
            || E'\n                v_prev := v_prev || jsonb_build_object(%2$L, v_o%1$s);'
            || E'\n                v_next := v_next || jsonb_build_object(%2$L, v_n%1$s);'
            || E'\n                v_cols := v_cols || %2$L::text;'
            || E'\n            END IF;',
            v_j, v_col);
    END LOOP;
    IF v_j = 0 THEN
        v_cols_expr := quote_literal('{}') || '::text[]';
        v_prev_expr := quote_literal('{}') || '::jsonb';
        v_next_expr := quote_literal('{}') || '::jsonb';
        v_mask := '0::int8';
    ELSE
        v_cols_expr := format('array_remove(ARRAY[%s]::text[], NULL)', v_cols_expr);
        IF v_j > 62 THEN
            v_mask := 'NULL::int8';  -- no single-column fast path for this many columns
        END IF;
        v_prev_expr := format('CASE s.m WHEN 0 THEN %L::jsonb%s ELSE %s END', '{}', v_prev_one, v_prev_expr);
        v_next_expr := format('CASE s.m WHEN 0 THEN %L::jsonb%s ELSE %s END', '{}', v_next_one, v_next_expr);
        v_cols_expr := format('CASE s.m WHEN 0 THEN %L::text[]%s ELSE %s END', '{}', v_cols_one, v_cols_expr);
    END IF;

    -- entity_type_id: the row's own column, else the entity's (NULL once it is gone).
    IF v_has_type THEN
        v_type_new := 'n.entity_type_id';
        v_type_old := 'o.entity_type_id';
        v_type_pair := 's.nt';
    ELSE
        v_type_new := format('(SELECT e.entity_type_id FROM %s e WHERE e.id = n.%I)', v_entities, p_entity_column);
        v_type_old := format('(SELECT e.entity_type_id FROM %s e WHERE e.id = o.%I)', v_entities, p_entity_column);
        v_type_pair := format('(SELECT e.entity_type_id FROM %s e WHERE e.id = s.ne)', v_entities);
    END IF;

    -- The set-based write's target, shared by the three actions.
    v_writes := format($w$INSERT INTO %1$s (id, entity_id, entity_type_id, action, performed_by, previous_state, new_state,
                          changed_columns, table_name, occurred_at, xid)$w$, v_events);

    v_body := format($body$
-- Generated by install_entity_tracking(%1$L, %2$L) for the columns (%3$s).
-- Do not edit: call install_entity_tracking again after changing the table's columns.
DECLARE
    v_now timestamptz := now();
    v_actor uuid := %4$s();
    v_action text := TG_OP;
    v_xid xid8 := pg_current_xact_id();
    -- microseconds of the statement's clock: 48 bits of milliseconds, version 7, then the
    -- fraction of the millisecond in 12 bits (ids in write order, see install_entity_tracking)
    v_us bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
    v_prefix text := lpad(to_hex(v_us / 1000), 12, '0') || '7' || lpad(to_hex((v_us %% 1000) * 4096 / 1000), 3, '0');
    v_count bigint;
    v_entity uuid;
    v_type uuid;
    v_prev jsonb;
    v_next jsonb;
    v_cols text[];%6$s
BEGIN
    -- The first changed row, and whether there is a second one.
    IF TG_OP = 'INSERT' THEN
        SELECT (SELECT count(*) FROM (SELECT FROM new_rows LIMIT 2) AS c), n.%2$I, %7$s, to_jsonb(n)
          INTO v_count, v_entity, v_type, v_next
          FROM (SELECT * FROM new_rows LIMIT 1) AS n;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT (SELECT count(*) FROM (SELECT FROM new_rows LIMIT 2) AS c), n.%2$I, %7$s%8$s
          INTO v_count, v_entity, v_type%9$s
          FROM (SELECT * FROM old_rows LIMIT 1) AS o, (SELECT * FROM new_rows LIMIT 1) AS n;
        IF v_count = 1 THEN
            v_prev := '{}';
            v_next := '{}';
            v_cols := '{}';%10$s
        END IF;
    ELSE
        SELECT (SELECT count(*) FROM (SELECT FROM old_rows LIMIT 2) AS c), o.%2$I, %11$s, to_jsonb(o)
          INTO v_count, v_entity, v_type, v_prev
          FROM (SELECT * FROM old_rows LIMIT 1) AS o;
    END IF;

    IF v_count IS NULL THEN
        NULL;  -- no row changed
    ELSIF v_count = 1 THEN
        INSERT INTO %13$s (id, entity_id, entity_type_id, action, performed_by, previous_state, new_state,
                           changed_columns, table_name, occurred_at, xid)
        VALUES ((v_prefix || %12$s)::uuid, v_entity, v_type, v_action, v_actor, v_prev, v_next, v_cols, %5$L, v_now, v_xid);
    ELSIF TG_OP = 'INSERT' THEN
        %14$s
        SELECT (v_prefix || %12$s)::uuid, n.%2$I, %7$s, v_action, v_actor, NULL::jsonb, to_jsonb(n), NULL::text[], %5$L, v_now, v_xid
          FROM new_rows AS n;
    ELSIF TG_OP = 'UPDATE' THEN
        %14$s
        SELECT (v_prefix || %12$s)::uuid, s.ne, %15$s, v_action, v_actor,
               %16$s,
               %17$s,
               %18$s,
               %5$L, v_now, v_xid
          FROM (SELECT s.*, %21$s AS m
                  FROM (SELECT %19$s%20$s
                          FROM (SELECT row_number() OVER () AS "#pos", t.* FROM old_rows AS t) AS o
                          FULL JOIN (SELECT row_number() OVER () AS "#pos", t.* FROM new_rows AS t) AS n ON n."#pos" = o."#pos"
                        OFFSET 0) AS s
                OFFSET 0) AS s;
    ELSE
        %14$s
        SELECT (v_prefix || %12$s)::uuid, o.%2$I, %11$s, v_action, v_actor, to_jsonb(o), NULL::jsonb, NULL::text[], %5$L, v_now, v_xid
          FROM old_rows AS o;
    END IF;
    RETURN NULL;
END
$body$,
        v_qualified, p_entity_column, array_to_string(v_columns, ', '), v_actor_fn, v_table,
        v_row_decl, v_type_new, v_row_select, v_row_into, v_row_diff,
        v_type_old, v_hex_expr, v_events, v_writes, v_type_pair,
        v_prev_expr, v_next_expr, v_cols_expr, v_pairs, v_flags,
        v_mask);

    EXECUTE format('CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SET jit = off AS %L',
                   v_function, v_body);
    EXECUTE format('COMMENT ON FUNCTION %s() IS %L', v_function,
                   format('entity change tracking (one entity_events row per change, the outbox) for %s, generated by install_entity_tracking v2 for columns (%s)',
                          v_qualified, array_to_string(v_columns, ', ')));

    FOR v_trigger IN
        SELECT * FROM (VALUES ('track_insert', 'INSERT', 'REFERENCING NEW TABLE AS new_rows'),
                              ('track_update', 'UPDATE', 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'),
                              ('track_delete', 'DELETE', 'REFERENCING OLD TABLE AS old_rows')) AS t (name, event, referencing)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = p_table AND tgname = v_trigger.name) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                           v_trigger.name, v_trigger.event, v_qualified, v_trigger.referencing, v_function);
        END IF;
    END LOOP;

    INSERT INTO trackschema.entity_tracking (table_name, entity_column, tracked_columns, ignored_columns, function_name)
    VALUES (v_qualified, p_entity_column, v_columns, p_ignore_columns, v_function)
    ON CONFLICT (table_name) DO UPDATE
       SET entity_column = EXCLUDED.entity_column, tracked_columns = EXCLUDED.tracked_columns,
           ignored_columns = EXCLUDED.ignored_columns, function_name = EXCLUDED.function_name,
           installed_at = now();
    RETURN v_function;
END
$gen$;
