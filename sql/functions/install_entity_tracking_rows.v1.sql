-- install_entity_tracking_rows(table, entity_column) v1: change tracking for one entity
-- table with ROW-level triggers, for tables distributed by Citus (revision
-- 0100_citus_distribution; docs/citus.md#triggers). It writes the same `entity_events` rows
-- as install_entity_tracking v2 (one per changed row: the action, the acting user, for
-- INSERT the new row, for DELETE the old row, for UPDATE only the columns that changed,
-- `updated_at` left out; `xid` = pg_current_xact_id(); ids UUIDv7-layout from the clock and
-- entity_tracking_id_seq), one row trigger call at a time instead of one set-based
-- statement.
--
-- Why: v2's statement triggers read transition tables (REFERENCING NEW TABLE ...), and on
-- a Citus shard they fail when they fire ("executor could not find named tuplestore",
-- Citus 13.2). A row trigger runs on the shard of the row that fired it; its INSERT into
-- `entity_events` (distributed by entity_id, co-located with the tracked table, whose
-- distribution column is the entity column) is routed to the co-located shard on the same
-- node, so the write and its outbox row commit in one local transaction.
--
-- The generated function, `track_<table>_row()`, names the table's columns directly (as v2
-- does): a revision that adds or drops a column of a tracked table on Citus calls this
-- function again. The triggers keep v2's names (track_insert, track_update, track_delete),
-- AFTER ... FOR EACH ROW; the statement triggers of those names are dropped first.
-- trackschema.entity_tracking is left as v2 recorded it: the downgrade of 0100 calls
-- install_entity_tracking (v2) from it to bring the statement triggers back.
--
-- Every value is computed into a variable before the INSERT: Citus routes the INSERT
-- (the trigger runs on a worker, which plans it as a distributed query) and evaluates the
-- stable functions of its VALUES first, every branch of current_actor_id()'s CASE included,
-- so `current_actor_id()` written in VALUES fails on an empty app.current_user_id.
--
-- Each row takes its own clock reading for its id (v2 takes one per statement): ids stay
-- in write order within a session. On a worker the sequence is that worker's own copy
-- (0100 creates one per node, each in its own range of the 60 bits), so ids written on
-- different nodes in the same microsecond cannot collide.
--
-- Returns the name of the generated function. Safe to call again.
CREATE OR REPLACE FUNCTION install_entity_tracking_rows(
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
    v_events text;
    v_entities text;
    v_seq text;
    v_actor_fn text;
    v_type_new text;
    v_type_old text;
    v_diff text := '';
    v_body text;
    v_trigger record;
BEGIN
    SELECT n.nspname, c.relname INTO v_schema, v_table
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table AND c.relkind = 'r';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'install_entity_tracking_rows: % is not a plain table', p_table USING ERRCODE = '22023';
    END IF;
    v_qualified := format('%I.%I', v_schema, v_table);
    v_function := format('%I.%I', v_schema, 'track_' || v_table || '_row');

    SELECT array_agg(attname ORDER BY attnum) INTO v_columns
      FROM pg_attribute
     WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped;
    IF NOT p_entity_column = ANY (v_columns) THEN
        RAISE EXCEPTION 'install_entity_tracking_rows: % has no column %', v_qualified, p_entity_column USING ERRCODE = '22023';
    END IF;
    v_has_type := 'entity_type_id' = ANY (v_columns);

    SELECT format('%I.%I', n.nspname, c.relname) INTO v_events
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entity_events'::regclass;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_entities
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entities'::regclass;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_seq
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'entity_tracking_id_seq'::regclass;
    SELECT format('%I.%I', n.nspname, p.proname) INTO v_actor_fn
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = 'current_actor_id()'::regprocedure;

    FOREACH v_col IN ARRAY v_columns LOOP
        CONTINUE WHEN v_col = ANY (p_ignore_columns);
        SELECT EXISTS (SELECT 1 FROM pg_operator op WHERE op.oprname = '=' AND op.oprleft = a.atttypid AND op.oprright = a.atttypid)
          INTO v_has_eq
          FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attname = v_col;
        v_diff := v_diff || format(
            CASE WHEN v_has_eq THEN E'\n        IF OLD.%1$I IS DISTINCT FROM NEW.%1$I THEN'
                 ELSE E'\n        IF OLD.%1$I::text IS DISTINCT FROM NEW.%1$I::text THEN' END
            || E'\n            v_prev := v_prev || jsonb_build_object(%2$L, OLD.%1$I);'
            || E'\n            v_next := v_next || jsonb_build_object(%2$L, NEW.%1$I);'
            || E'\n            v_cols := v_cols || %2$L::text;'
            || E'\n        END IF;',
            v_col, v_col::text);
    END LOOP;

    IF v_has_type THEN
        v_type_new := 'NEW.entity_type_id';
        v_type_old := 'OLD.entity_type_id';
    ELSE
        v_type_new := format('(SELECT e.entity_type_id FROM %s e WHERE e.id = NEW.%I)', v_entities, p_entity_column);
        v_type_old := format('(SELECT e.entity_type_id FROM %s e WHERE e.id = OLD.%I)', v_entities, p_entity_column);
    END IF;

    v_body := format($body$
-- Generated by install_entity_tracking_rows(%1$L, %2$L) for the columns (%3$s).
-- Do not edit: call install_entity_tracking_rows again after changing the table's columns.
DECLARE
    v_us bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
    v_id uuid := (lpad(to_hex(v_us / 1000), 12, '0') || '7' || lpad(to_hex((v_us %% 1000) * 4096 / 1000), 3, '0')
                  || to_hex(nextval(%8$L::regclass) | (-9223372036854775808)::int8))::uuid;
    v_actor uuid := %9$s();
    v_xid xid8 := pg_current_xact_id();
    v_entity uuid;
    v_type uuid;
    v_prev jsonb;
    v_next jsonb;
    v_cols text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_entity := NEW.%2$I;
        v_type := %4$s;
        v_next := to_jsonb(NEW);
    ELSIF TG_OP = 'UPDATE' THEN
        v_entity := NEW.%2$I;
        v_type := %4$s;
        v_prev := '{}';
        v_next := '{}';
        v_cols := '{}';%5$s
    ELSE
        v_entity := OLD.%2$I;
        v_type := %6$s;
        v_prev := to_jsonb(OLD);
    END IF;
    INSERT INTO %7$s (id, entity_id, entity_type_id, action, performed_by, previous_state, new_state,
                      changed_columns, table_name, occurred_at, xid)
    VALUES (v_id, v_entity, v_type, TG_OP, v_actor, v_prev, v_next, v_cols, %10$L, now(), v_xid);
    RETURN NULL;
END
$body$,
        v_qualified, p_entity_column, array_to_string(v_columns, ', '), v_type_new, v_diff,
        v_type_old, v_events, v_seq, v_actor_fn, v_table);

    EXECUTE format('CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS %L', v_function, v_body);
    EXECUTE format('COMMENT ON FUNCTION %s() IS %L', v_function,
                   format('entity change tracking, row by row (Citus), for %s, generated by install_entity_tracking_rows v1 for columns (%s)',
                          v_qualified, array_to_string(v_columns, ', ')));

    FOR v_trigger IN
        SELECT * FROM (VALUES ('track_insert', 'INSERT'), ('track_update', 'UPDATE'), ('track_delete', 'DELETE')) AS t (name, event)
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_trigger.name, v_qualified);
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s FOR EACH ROW EXECUTE FUNCTION %s()',
                       v_trigger.name, v_trigger.event, v_qualified, v_function);
    END LOOP;
    RETURN v_function;
END
$gen$;
