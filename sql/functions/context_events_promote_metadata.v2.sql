-- Dual-write for the context_events.metadata promotions, version 2 (from the validate
-- revision on, when source_roadmap_item_id has its foreign key to roadmap_items).
--   metadata.source            <-> source_type              text, one of guardrails/trip/planner
--   metadata.roadmap_item_id   <-> source_roadmap_item_id   uuid of a roadmap_items row
--   metadata.itinerary_item_id <-> source_itinerary_item_id uuid
--
-- BEFORE INSERT OR UPDATE, per row. Afterwards every pair is in step: the column holds the
-- promoted JSON value. A missing key and JSON null both mean "no value" (column NULL). A
-- value that cannot be promoted (not a JSON string, not a uuid, not an allowed value)
-- leaves the column NULL and is recorded in trackschema.promotion_rejects with the
-- reason: a JSON value never makes the write fail.
--
-- Which side wins when the two disagree:
--   * the write changed only the JSON key (an INSERT that sets only the key counts): the
--     key wins and the column is derived from it;
--   * the write changed the column (an INSERT that sets the column counts): the column
--     wins and the key is rewritten from it. This is also the rule for one write that sets
--     both sides to different values: the column is the typed, constrained side, and a
--     writer that sets it is the newer code path. Setting the column to NULL removes the
--     key, unless the key does not promote anyway (then NULL + reject is already in step);
--   * neither side changed (a touch of a row the backfill has not reached, a row put out
--     of step while the trigger was absent): a non-NULL column wins, else the key fills
--     the column.
-- A value written to the column directly is the writer's typed input: the constraints of
-- the validate revision check it like any column value (the trigger does not launder it).
-- trackschema.maintenance = on (backfill batches) changes nothing here: maintenance writes
-- are kept in step like any other.
--
-- Version 2 differs from version 1 in one thing: a roadmap_item_id key is looked up, and a
-- uuid with no roadmap_items row leaves the column NULL with a reject instead of reaching
-- the foreign key (which would fail the write). The lookup takes FOR KEY SHARE, the lock
-- the foreign key check takes, so a concurrent DELETE of the item cannot slip in between.
-- When ON DELETE SET NULL clears the column, the key keeps the deleted item's id and a
-- reject says it is gone (the key no longer promotes, so the pair is in step).
CREATE OR REPLACE FUNCTION context_events_promote_metadata()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
    v jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- metadata.source -> source_type
        IF NEW.source_type IS NULL THEN
            v := NEW.metadata -> 'source';
            IF v IS NOT NULL THEN
                NEW.source_type := jsonb_promote_text(v, '{guardrails,trip,planner}'::text[]);
                IF NEW.source_type IS NULL AND v <> 'null'::jsonb THEN
                    PERFORM trackschema.record_promotion_reject('source_type', NEW.id, v, jsonb_promotion_problem(v, 'text', '{guardrails,trip,planner}'::text[]));
                END IF;
            END IF;
        ELSIF jsonb_promote_text(NEW.metadata -> 'source', '{guardrails,trip,planner}'::text[]) IS DISTINCT FROM NEW.source_type THEN
            NEW.metadata := coalesce(NEW.metadata, '{}'::jsonb) || jsonb_build_object('source', NEW.source_type);  -- the column wins
        END IF;

        -- metadata.roadmap_item_id -> source_roadmap_item_id
        IF NEW.source_roadmap_item_id IS NULL THEN
            v := NEW.metadata -> 'roadmap_item_id';
            IF v IS NOT NULL THEN
                NEW.source_roadmap_item_id := jsonb_promote_uuid(v);
                IF NEW.source_roadmap_item_id IS NOT NULL THEN
                    PERFORM 1 FROM roadmap_items WHERE id = NEW.source_roadmap_item_id FOR KEY SHARE;
                    IF NOT FOUND THEN
                        PERFORM trackschema.record_promotion_reject('source_roadmap_item_id', NEW.id, v, 'no roadmap_items row has id ' || NEW.source_roadmap_item_id);
                        NEW.source_roadmap_item_id := NULL;
                    END IF;
                ELSIF v <> 'null'::jsonb THEN
                    PERFORM trackschema.record_promotion_reject('source_roadmap_item_id', NEW.id, v, jsonb_promotion_problem(v, 'uuid'));
                END IF;
            END IF;
        ELSIF jsonb_promote_uuid(NEW.metadata -> 'roadmap_item_id') IS DISTINCT FROM NEW.source_roadmap_item_id THEN
            NEW.metadata := coalesce(NEW.metadata, '{}'::jsonb) || jsonb_build_object('roadmap_item_id', NEW.source_roadmap_item_id);  -- the column wins
        END IF;

        -- metadata.itinerary_item_id -> source_itinerary_item_id
        IF NEW.source_itinerary_item_id IS NULL THEN
            v := NEW.metadata -> 'itinerary_item_id';
            IF v IS NOT NULL THEN
                NEW.source_itinerary_item_id := jsonb_promote_uuid(v);
                IF NEW.source_itinerary_item_id IS NULL AND v <> 'null'::jsonb THEN
                    PERFORM trackschema.record_promotion_reject('source_itinerary_item_id', NEW.id, v, jsonb_promotion_problem(v, 'uuid'));
                END IF;
            END IF;
        ELSIF jsonb_promote_uuid(NEW.metadata -> 'itinerary_item_id') IS DISTINCT FROM NEW.source_itinerary_item_id THEN
            NEW.metadata := coalesce(NEW.metadata, '{}'::jsonb) || jsonb_build_object('itinerary_item_id', NEW.source_itinerary_item_id);  -- the column wins
        END IF;

        RETURN NEW;
    END IF;

    -- UPDATE
    -- metadata.source -> source_type
    v := NEW.metadata -> 'source';
    IF NEW.source_type IS NOT NULL AND jsonb_promote_text(v, '{guardrails,trip,planner}'::text[]) IS NOT DISTINCT FROM NEW.source_type THEN
        NULL;  -- in step
    ELSIF NEW.source_type IS NOT DISTINCT FROM OLD.source_type AND v IS DISTINCT FROM OLD.metadata -> 'source' THEN
        -- only the key changed: the key wins
        NEW.source_type := jsonb_promote_text(v, '{guardrails,trip,planner}'::text[]);
        IF NEW.source_type IS NULL AND v IS NOT NULL AND v <> 'null'::jsonb THEN
            PERFORM trackschema.record_promotion_reject('source_type', NEW.id, v, jsonb_promotion_problem(v, 'text', '{guardrails,trip,planner}'::text[]));
        END IF;
    ELSIF NEW.source_type IS NOT NULL THEN
        -- the column changed, or neither side did: the column wins
        NEW.metadata := coalesce(NEW.metadata, '{}'::jsonb) || jsonb_build_object('source', NEW.source_type);
    ELSIF v IS NOT NULL AND v <> 'null'::jsonb THEN
        -- the column is NULL and the key has a value
        IF OLD.source_type IS NOT NULL AND jsonb_promote_text(v, '{guardrails,trip,planner}'::text[]) IS NOT NULL THEN
            NEW.metadata := NEW.metadata - 'source';  -- the column was cleared: the key follows
        ELSE
            NEW.source_type := jsonb_promote_text(v, '{guardrails,trip,planner}'::text[]);
            IF NEW.source_type IS NULL AND v IS NOT NULL AND v <> 'null'::jsonb THEN
                PERFORM trackschema.record_promotion_reject('source_type', NEW.id, v, jsonb_promotion_problem(v, 'text', '{guardrails,trip,planner}'::text[]));
            END IF;
        END IF;
    END IF;

    -- metadata.roadmap_item_id -> source_roadmap_item_id
    v := NEW.metadata -> 'roadmap_item_id';
    IF NEW.source_roadmap_item_id IS NOT NULL AND jsonb_promote_uuid(v) IS NOT DISTINCT FROM NEW.source_roadmap_item_id THEN
        NULL;  -- in step
    ELSIF NEW.source_roadmap_item_id IS NOT DISTINCT FROM OLD.source_roadmap_item_id AND v IS DISTINCT FROM OLD.metadata -> 'roadmap_item_id' THEN
        -- only the key changed: the key wins
        NEW.source_roadmap_item_id := jsonb_promote_uuid(v);
        IF NEW.source_roadmap_item_id IS NOT NULL THEN
            PERFORM 1 FROM roadmap_items WHERE id = NEW.source_roadmap_item_id FOR KEY SHARE;
            IF NOT FOUND THEN
                PERFORM trackschema.record_promotion_reject('source_roadmap_item_id', NEW.id, v, 'no roadmap_items row has id ' || NEW.source_roadmap_item_id);
                NEW.source_roadmap_item_id := NULL;
            END IF;
        ELSIF v IS NOT NULL AND v <> 'null'::jsonb THEN
            PERFORM trackschema.record_promotion_reject('source_roadmap_item_id', NEW.id, v, jsonb_promotion_problem(v, 'uuid'));
        END IF;
    ELSIF NEW.source_roadmap_item_id IS NOT NULL THEN
        -- the column changed, or neither side did: the column wins
        NEW.metadata := coalesce(NEW.metadata, '{}'::jsonb) || jsonb_build_object('roadmap_item_id', NEW.source_roadmap_item_id);
    ELSIF v IS NOT NULL AND v <> 'null'::jsonb THEN
        -- the column is NULL and the key has a value
        IF OLD.source_roadmap_item_id IS NOT NULL AND jsonb_promote_uuid(v) IS NOT NULL
           AND EXISTS (SELECT 1 FROM roadmap_items WHERE id = jsonb_promote_uuid(v)) THEN
            NEW.metadata := NEW.metadata - 'roadmap_item_id';  -- the column was cleared: the key follows
        ELSE
            NEW.source_roadmap_item_id := jsonb_promote_uuid(v);
            IF NEW.source_roadmap_item_id IS NOT NULL THEN
                PERFORM 1 FROM roadmap_items WHERE id = NEW.source_roadmap_item_id FOR KEY SHARE;
                IF NOT FOUND THEN
                    PERFORM trackschema.record_promotion_reject('source_roadmap_item_id', NEW.id, v, 'no roadmap_items row has id ' || NEW.source_roadmap_item_id);
                    NEW.source_roadmap_item_id := NULL;
                END IF;
            ELSIF v IS NOT NULL AND v <> 'null'::jsonb THEN
                PERFORM trackschema.record_promotion_reject('source_roadmap_item_id', NEW.id, v, jsonb_promotion_problem(v, 'uuid'));
            END IF;
        END IF;
    END IF;

    -- metadata.itinerary_item_id -> source_itinerary_item_id
    v := NEW.metadata -> 'itinerary_item_id';
    IF NEW.source_itinerary_item_id IS NOT NULL AND jsonb_promote_uuid(v) IS NOT DISTINCT FROM NEW.source_itinerary_item_id THEN
        NULL;  -- in step
    ELSIF NEW.source_itinerary_item_id IS NOT DISTINCT FROM OLD.source_itinerary_item_id AND v IS DISTINCT FROM OLD.metadata -> 'itinerary_item_id' THEN
        -- only the key changed: the key wins
        NEW.source_itinerary_item_id := jsonb_promote_uuid(v);
        IF NEW.source_itinerary_item_id IS NULL AND v IS NOT NULL AND v <> 'null'::jsonb THEN
            PERFORM trackschema.record_promotion_reject('source_itinerary_item_id', NEW.id, v, jsonb_promotion_problem(v, 'uuid'));
        END IF;
    ELSIF NEW.source_itinerary_item_id IS NOT NULL THEN
        -- the column changed, or neither side did: the column wins
        NEW.metadata := coalesce(NEW.metadata, '{}'::jsonb) || jsonb_build_object('itinerary_item_id', NEW.source_itinerary_item_id);
    ELSIF v IS NOT NULL AND v <> 'null'::jsonb THEN
        -- the column is NULL and the key has a value
        IF OLD.source_itinerary_item_id IS NOT NULL AND jsonb_promote_uuid(v) IS NOT NULL THEN
            NEW.metadata := NEW.metadata - 'itinerary_item_id';  -- the column was cleared: the key follows
        ELSE
            NEW.source_itinerary_item_id := jsonb_promote_uuid(v);
            IF NEW.source_itinerary_item_id IS NULL AND v IS NOT NULL AND v <> 'null'::jsonb THEN
                PERFORM trackschema.record_promotion_reject('source_itinerary_item_id', NEW.id, v, jsonb_promotion_problem(v, 'uuid'));
            END IF;
        END IF;
    END IF;

    RETURN NEW;
END
$fn$;
