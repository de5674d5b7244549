-- fn_create_entity(entity_type, data): create an entity and its type-specific row in one
-- statement (so in one transaction: an error leaves nothing behind, tracking included).
--
-- entity_type: the type's name, display name or id. data: a JSON object;
--   "status"                 -> entities.status (default ACTIVE), a string;
--   the columns of the type's own table (contact -> contacts: first_name, last_name,
--   email, phone; address -> addresses: street, city, state, postal_code, country),
--   scalar values;
--   every other key          -> entities.data.
-- id, entity_type_id, created_by, created_at and updated_at are set by the database
-- (created_by is the acting user, current_actor_id()) and refused in data.
-- Errors: unknown type (P0002), data that is not an object or holds a bad value (22023).
CREATE OR REPLACE FUNCTION fn_create_entity(p_entity_type text, p_data jsonb DEFAULT '{}'::jsonb)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_type_id uuid;
    v_type_name text;
    v_data jsonb := coalesce(p_data, '{}'::jsonb);
    v_table regclass;
    v_columns text[] := '{}';
    v_given text[];
    v_rest jsonb;
    v_key text;
    v_id uuid;
BEGIN
    SELECT id, name INTO v_type_id, v_type_name
      FROM entity_types
     WHERE name = p_entity_type OR display_name = p_entity_type OR id::text = lower(p_entity_type)
     LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fn_create_entity: unknown entity type %', coalesce(quote_literal(p_entity_type), 'NULL')
            USING ERRCODE = 'P0002',
                  HINT = 'known types: ' || coalesce((SELECT string_agg(name, ', ' ORDER BY name) FROM entity_types), 'none');
    END IF;
    IF jsonb_typeof(v_data) <> 'object' THEN
        RAISE EXCEPTION 'fn_create_entity: data must be a JSON object, got %', jsonb_typeof(v_data) USING ERRCODE = '22023';
    END IF;
    IF v_data ?| ARRAY['id', 'entity_type_id', 'created_by', 'created_at', 'updated_at'] THEN
        RAISE EXCEPTION 'fn_create_entity: data may not set id, entity_type_id, created_by, created_at or updated_at'
            USING ERRCODE = '22023';
    END IF;
    IF v_data ? 'status' AND jsonb_typeof(v_data -> 'status') <> 'string' THEN
        RAISE EXCEPTION 'fn_create_entity: status must be a string, got %', v_data -> 'status' USING ERRCODE = '22023';
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
            RAISE EXCEPTION 'fn_create_entity: % must be a string, number or boolean, got %', v_key, v_data -> v_key
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    v_rest := v_data - 'status' - v_given;

    INSERT INTO entities (entity_type_id, status, data, created_by)
    VALUES (v_type_id, coalesce(v_data ->> 'status', 'ACTIVE'), v_rest, current_actor_id())
    RETURNING id INTO v_id;

    IF v_table IS NOT NULL THEN
        BEGIN
            EXECUTE format('INSERT INTO %s (id%s) SELECT $1%s FROM jsonb_populate_record(NULL::%s, $2) AS r',
                           v_table,
                           (SELECT coalesce(string_agg(', ' || quote_ident(c), ''), '') FROM unnest(v_given) AS c),
                           (SELECT coalesce(string_agg(', r.' || quote_ident(c), ''), '') FROM unnest(v_given) AS c),
                           v_table)
            USING v_id, v_data;
        EXCEPTION
            WHEN invalid_text_representation OR datetime_field_overflow OR numeric_value_out_of_range
                 OR string_data_right_truncation OR invalid_datetime_format OR not_null_violation OR check_violation THEN
                RAISE EXCEPTION 'fn_create_entity: invalid data for %: %', v_type_name, SQLERRM USING ERRCODE = '22023';
        END;
    END IF;
    RETURN v_id;
END
$$;
