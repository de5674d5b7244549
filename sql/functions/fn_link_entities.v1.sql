-- fn_link_entities(from, to, relationship): record that `from` relates to `to`.
--
-- Idempotent: linking the same pair with the same relationship again returns the
-- existing link's id and writes nothing. Errors: a missing entity (P0002), an entity
-- linked to itself or an empty relationship name (22023).
CREATE OR REPLACE FUNCTION fn_link_entities(p_from uuid, p_to uuid, p_relationship text)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_relationship text := btrim(p_relationship);
    v_missing uuid;
    v_id uuid;
BEGIN
    IF v_relationship IS NULL OR v_relationship = '' THEN
        RAISE EXCEPTION 'fn_link_entities: relationship must be a non-empty name' USING ERRCODE = '22023';
    END IF;
    IF p_from IS NULL OR p_to IS NULL THEN
        RAISE EXCEPTION 'fn_link_entities: both entity ids are required' USING ERRCODE = '22023';
    END IF;
    IF p_from = p_to THEN
        RAISE EXCEPTION 'fn_link_entities: an entity cannot be linked to itself (%)', p_from USING ERRCODE = '22023';
    END IF;
    -- Checked here for a clear error; the foreign keys then lock both rows (FOR KEY SHARE).
    SELECT w.id INTO v_missing
      FROM unnest(ARRAY[p_from, p_to]) AS w (id)
     WHERE NOT EXISTS (SELECT 1 FROM entities e WHERE e.id = w.id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'fn_link_entities: no entity with id %', v_missing USING ERRCODE = 'P0002';
    END IF;

    INSERT INTO entity_relationships (from_entity_id, to_entity_id, relationship_type)
    VALUES (p_from, p_to, v_relationship)
    ON CONFLICT ON CONSTRAINT entity_relationships_unique DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM entity_relationships
         WHERE from_entity_id = p_from AND to_entity_id = p_to AND relationship_type = v_relationship;
    END IF;
    RETURN v_id;
END
$$;
