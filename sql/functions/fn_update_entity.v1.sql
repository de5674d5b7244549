-- fn_update_entity(entity_id, data): change an entity and its type-specific row in one
-- statement (one transaction; an error changes nothing).
--
-- data is a JSON object with the same keys as fn_create_entity: "status", the columns of
-- the type's own table (created if the entity has none yet), and other keys, which are
-- merged into entities.data (a key set to null is removed from it). Keys not given keep
-- their value; an update that changes nothing writes nothing (and so logs nothing).
-- Errors: no such entity (P0002), data that is not an object or holds a bad value (22023).
-- Returns the entity id.
CREATE OR REPLACE FUNCTION fn_update_entity(p_entity_id uuid, p_data jsonb)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_type_name text;
    v_data jsonb := coalesce(p_data, '{}'::jsonb);
    v_table regclass;
    v_columns text[] := '{}';
    v_given text[];
    v_rest jsonb;
    v_removed text[];
    v_key text;
BEGIN
    SELECT t.name INTO v_type_name
      FROM entities e JOIN entity_types t ON t.id = e.entity_type_id
     WHERE e.id = p_entity_id
       FOR NO KEY UPDATE OF e;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fn_update_entity: no entity with id %', coalesce(p_entity_id::text, 'NULL') USING ERRCODE = 'P0002';
    END IF;
    IF jsonb_typeof(v_data) <> 'object' THEN
        RAISE EXCEPTION 'fn_update_entity: data must be a JSON object, got %', jsonb_typeof(v_data) USING ERRCODE = '22023';
    END IF;
    IF v_data ?| ARRAY['id', 'entity_type_id', 'created_by', 'created_at', 'updated_at'] THEN
        RAISE EXCEPTION 'fn_update_entity: data may not set id, entity_type_id, created_by, created_at or updated_at'
            USING ERRCODE = '22023';
    END IF;
    IF v_data ? 'status' AND jsonb_typeof(v_data -> 'status') <> 'string' THEN
        RAISE EXCEPTION 'fn_update_entity: status must be a string, got %', v_data -> 'status' USING ERRCODE = '22023';
    END IF;

    v_table := CASE v_type_name WHEN 'contact' THEN to_regclass('contacts') WHEN 'address' THEN to_regclass('addresses') END;
    IF v_table IS NOT NULL THEN
        v_columns := ARRAY(SELECT attname::text FROM pg_attribute
                            WHERE attrelid = v_table AND attnum > 0 AND NOT attisdropped
                              AND attname NOT IN ('id', 'created_at', 'updated_at')
                            ORDER BY attnum);
    END IF;
    v_given := ARRAY(SELECT k FROM jsonb_object_keys(v_data) AS k WHERE k = ANY (v_columns) ORDER BY k);
    FOREACH v_key IN ARRAY v_given LOOP
        IF jsonb_typeof(v_data -> v_key) NOT IN ('string', 'number', 'boolean', 'null') THEN
            RAISE EXCEPTION 'fn_update_entity: % must be a string, number or boolean, got %', v_key, v_data -> v_key
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    v_rest := v_data - 'status' - v_given;
    v_removed := ARRAY(SELECT key FROM jsonb_each(v_rest) WHERE jsonb_typeof(value) = 'null');

    UPDATE entities
       SET status = coalesce(v_data ->> 'status', status),
           data = (data || (v_rest - v_removed)) - v_removed
     WHERE id = p_entity_id;

    IF v_table IS NOT NULL AND cardinality(v_given) > 0 THEN
        BEGIN
            EXECUTE format('INSERT INTO %1$s (id%2$s) SELECT $1%3$s FROM jsonb_populate_record(NULL::%1$s, $2) AS r '
                           'ON CONFLICT (id) DO UPDATE SET %4$s',
                           v_table,
                           (SELECT string_agg(', ' || quote_ident(c), '') FROM unnest(v_given) AS c),
                           (SELECT string_agg(', r.' || quote_ident(c), '') FROM unnest(v_given) AS c),
                           (SELECT string_agg(format('%1$I = EXCLUDED.%1$I', c), ', ') FROM unnest(v_given) AS c))
            USING p_entity_id, v_data;
        EXCEPTION
            WHEN invalid_text_representation OR datetime_field_overflow OR numeric_value_out_of_range
                 OR string_data_right_truncation OR invalid_datetime_format OR not_null_violation OR check_violation THEN
                RAISE EXCEPTION 'fn_update_entity: invalid data for %: %', v_type_name, SQLERRM USING ERRCODE = '22023';
        END;
    END IF;
    RETURN p_entity_id;
END
$$;
