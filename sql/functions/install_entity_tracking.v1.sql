-- install_entity_tracking(table, entity_column): generate and attach change tracking for
-- one entity table.
--
-- Every INSERT, UPDATE and DELETE statement on the table then writes, in the same
-- transaction and with one set-based INSERT per target table:
--   * one `entity_events` row per changed row: the action, the acting user
--     (current_actor_id()), for INSERT the new row, for DELETE the old row (from OLD),
--     for UPDATE only the columns that changed (`changed_columns`, their old values in
--     `previous_state`, their new values in `new_state`; `updated_at` is left out, so a
--     row whose only change is updated_at gets an event with no changed columns);
--   * one `activity_log` row that refers to the event (`entity_event_id`) instead of
--     repeating the row;
--   * one `event_queue` row (the outbox) naming the event, for the queue worker.
--
-- How: three AFTER ... FOR EACH STATEMENT triggers with transition tables
-- (track_insert, track_update, track_delete) call a function generated for this table,
-- `track_<table>_change()`, whose SQL names the table's columns directly. Comparing
-- columns directly is about ten times cheaper than a generic row-to-jsonb diff; the
-- price is that the function knows the columns the table had when it was generated. A
-- revision that adds or drops a column of a tracked table must call this function again
-- (it replaces the function); `trackschema audit triggers` reports a stale one
-- (`stale_tracking_function`) with that call as the fix. The columns each function was
-- generated for are recorded in trackschema.entity_tracking.
--
-- UPDATE pairs OLD and NEW rows by position: PostgreSQL appends each updated row's old
-- and new version to the two transition tables together, so the n-th old row and the
-- n-th new row are the same row, whatever happened to its key. The pairing numbers
-- both scans with row_number() and joins on that number (as cheap as a join on the key,
-- and right also for a statement that changes keys). It is written as a FULL JOIN (the
-- counts are equal, so it pairs exactly like an inner join) because a full join cannot
-- be a nested loop: PL/pgSQL caches statement plans, the planner knows the transition
-- tables' row counts only when it plans, and a nested loop planned for a 1-row
-- statement and reused on a 100k-row one would compare every pair.
--
-- Event and activity ids are UUIDv7-layout values: the transaction time in milliseconds,
-- then 60 bits of the sequence entity_tracking_id_seq (unique without a random draw per
-- row, which would cost more than the rest of the row).
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
    v_col name;
    v_i int := 0;
    v_entity_pos int;
    v_events text;
    v_activity text;
    v_queue text;
    v_entities text;
    v_seq text;
    v_actor_fn text;
    v_id_expr text;
    v_type_new text;
    v_type_old text;
    v_type_pair text;
    v_aliases text := '';
    v_flags text := '';
    v_cols_expr text := '';
    v_prev_expr text := '';
    v_next_expr text := '';
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

    -- Qualified names of what the generated code uses, resolved now.
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_events
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entity_events'::regclass;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_activity
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'activity_log'::regclass;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_queue
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'event_queue'::regclass;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_entities
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entities'::regclass;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_seq
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entity_tracking_id_seq'::regclass;
    SELECT format('%I.%I', n.nspname, p.proname) INTO v_actor_fn
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = 'current_actor_id()'::regprocedure;

    v_id_expr := format('(v_prefix || lpad(to_hex(nextval(%L::regclass)), 15, %L))::uuid', v_seq, '0');

    -- UPDATE reads both transition tables as one row per change, the columns as
    -- o1..oN (old) and n1..nN (new), N = every column in attnum order, with one flag per
    -- compared column; then the changed names and their values. Columns whose type has
    -- no = operator of its own (json, xml, point...) compare as text.
    FOREACH v_col IN ARRAY v_columns LOOP
        v_i := v_i + 1;
        v_aliases := v_aliases || CASE WHEN v_i > 1 THEN ', ' ELSE '' END || format('o.%1$I AS o%2$s, n.%1$I AS n%2$s', v_col, v_i);
        IF v_col = p_entity_column THEN
            v_entity_pos := v_i;
        END IF;
        IF v_col = 'entity_type_id' THEN
            v_type_pair := format('s.n%s', v_i);
        END IF;
        CONTINUE WHEN v_col = ANY (p_ignore_columns);
        IF EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_operator op
                       ON op.oprname = '=' AND op.oprleft = a.atttypid AND op.oprright = a.atttypid
                    WHERE a.attrelid = p_table AND a.attname = v_col) THEN
            v_flags := v_flags || format(', o.%1$I IS DISTINCT FROM n.%1$I AS d%2$s', v_col, v_i);
        ELSE
            v_flags := v_flags || format(', o.%1$I::text IS DISTINCT FROM n.%1$I::text AS d%2$s', v_col, v_i);
        END IF;
        v_cols_expr := v_cols_expr || CASE WHEN v_cols_expr <> '' THEN ', ' ELSE '' END
            || format('CASE WHEN s.d%s THEN %L END', v_i, v_col);
        v_prev_expr := v_prev_expr || CASE WHEN v_prev_expr <> '' THEN E'\n                   || ' ELSE '' END
            || format('CASE WHEN s.d%1$s THEN jsonb_build_object(%2$L, s.o%1$s) ELSE %3$L::jsonb END', v_i, v_col, '{}');
        v_next_expr := v_next_expr || CASE WHEN v_next_expr <> '' THEN E'\n                   || ' ELSE '' END
            || format('CASE WHEN s.d%1$s THEN jsonb_build_object(%2$L, s.n%1$s) ELSE %3$L::jsonb END', v_i, v_col, '{}');
    END LOOP;
    IF v_cols_expr = '' THEN
        v_cols_expr := 'NULL';
        v_prev_expr := quote_literal('{}') || '::jsonb';
        v_next_expr := quote_literal('{}') || '::jsonb';
    END IF;

    -- entity_type_id: the row's own column, else the entity's (NULL once it is gone).
    IF 'entity_type_id' = ANY (v_columns) THEN
        v_type_new := 'n.entity_type_id';
        v_type_old := 'o.entity_type_id';
    ELSE
        v_type_new := format('(SELECT e.entity_type_id FROM %s e WHERE e.id = n.%I)', v_entities, p_entity_column);
        v_type_old := format('(SELECT e.entity_type_id FROM %s e WHERE e.id = o.%I)', v_entities, p_entity_column);
        v_type_pair := format('(SELECT e.entity_type_id FROM %s e WHERE e.id = s.n%s)', v_entities, v_entity_pos);
    END IF;

    -- The three writes, shared by the three branches.
    v_writes := format($w$, ev AS (
            INSERT INTO %1$s (id, entity_id, entity_type_id, action, performed_by, previous_state, new_state,
                              changed_columns, table_name, occurred_at)
            SELECT event_id, entity_id, entity_type_id, v_action, v_actor, previous_state, new_state,
                   changed_columns, %4$L, v_now
              FROM src
        ), activity AS (
            INSERT INTO %2$s (id, user_id, entity_id, entity_type, action, occurred_at, entity_event_id)
            SELECT %5$s, v_actor, entity_id, %4$L, v_action, v_now, event_id
              FROM src
        )
        INSERT INTO %3$s (event_type, entity_event_id, created_at, available_at)
        SELECT v_event_type, event_id, v_now, v_now
          FROM src;$w$, v_events, v_activity, v_queue, v_table, v_id_expr);

    v_body := format($body$
-- Generated by install_entity_tracking(%1$L, %2$L) for the columns (%3$s).
-- Do not edit: call install_entity_tracking again after changing the table's columns.
DECLARE
    v_now timestamptz := now();
    v_actor uuid := %4$s();
    v_action text := TG_OP;
    v_event_type text := %5$L || '.' || lower(TG_OP);
    -- 48 bits of Unix milliseconds, version 7, 12 zero bits, the variant; 60 sequence bits follow.
    v_prefix text := lpad(to_hex((extract(epoch FROM v_now) * 1000)::bigint), 12, '0') || '70008';
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH src AS MATERIALIZED (
            SELECT %6$s AS event_id, n.%2$I AS entity_id, %7$s AS entity_type_id,
                   NULL::jsonb AS previous_state, to_jsonb(n) AS new_state, NULL::text[] AS changed_columns
              FROM new_rows AS n
        )%8$s
    ELSIF TG_OP = 'UPDATE' THEN
        WITH src AS MATERIALIZED (
            SELECT %6$s AS event_id, s.n%9$s AS entity_id, %10$s AS entity_type_id,
                   %11$s AS previous_state,
                   %12$s AS new_state,
                   array_remove(ARRAY[%13$s]::text[], NULL) AS changed_columns
              FROM (SELECT %15$s%14$s
                      FROM (SELECT row_number() OVER () AS "#pos", t.* FROM old_rows AS t) AS o
                      FULL JOIN (SELECT row_number() OVER () AS "#pos", t.* FROM new_rows AS t) AS n ON n."#pos" = o."#pos"
                    OFFSET 0) AS s
        )%8$s
    ELSIF TG_OP = 'DELETE' THEN
        WITH src AS MATERIALIZED (
            SELECT %6$s AS event_id, o.%2$I AS entity_id, %16$s AS entity_type_id,
                   to_jsonb(o) AS previous_state, NULL::jsonb AS new_state, NULL::text[] AS changed_columns
              FROM old_rows AS o
        )%8$s
    END IF;
    RETURN NULL;
END
$body$,
        v_qualified, p_entity_column, array_to_string(v_columns, ', '), v_actor_fn, v_table,
        v_id_expr, v_type_new, v_writes, v_entity_pos, v_type_pair,
        v_prev_expr, v_next_expr, v_cols_expr, v_flags, v_aliases,
        v_type_old);

    EXECUTE format('CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SET jit = off AS %L',
                   v_function, v_body);
    EXECUTE format('COMMENT ON FUNCTION %s() IS %L', v_function,
                   format('entity change tracking for %s, generated by install_entity_tracking for columns (%s)',
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
