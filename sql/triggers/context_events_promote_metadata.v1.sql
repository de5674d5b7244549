-- Keep the promoted columns and their metadata keys in step on every write (see
-- functions/context_events_promote_metadata.v1.sql for the rules).
-- Every UPDATE, not only UPDATE OF the JSON or the columns: an update of any column can move
-- a row the backfill has not reached to a page it has already passed (or beyond the pages
-- its pass covers); firing here fills that row as it moves, so the backfill can never miss
-- it. WHEN: a row with none of the keys and no promoted value is in step as it is, so the
-- function is not even called (checked in C, cheaply).
-- The name sorts before update_*/set_* triggers, so a BEFORE trigger that compares NEW
-- with OLD (such as an updated_at trigger) sees the row as it will be stored.
CREATE TRIGGER context_events_promote_metadata
    BEFORE INSERT OR UPDATE
    ON context_events
    FOR EACH ROW
    WHEN (NEW.metadata ?| '{source,roadmap_item_id,itinerary_item_id}'::text[]
          OR NEW.source_type IS NOT NULL OR NEW.source_roadmap_item_id IS NOT NULL OR NEW.source_itinerary_item_id IS NOT NULL)
    EXECUTE FUNCTION context_events_promote_metadata();
