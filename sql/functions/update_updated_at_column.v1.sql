-- The one BEFORE UPDATE ... FOR EACH ROW trigger function for every table with an
-- `updated_at` column (seed 004 §4: no per-table copies).
--
-- * A no-op update (the new row is byte-for-byte the old one, compared with the record
--   image operator `*=`, which works for every column type, json included) is skipped:
--   RETURN NULL, so nothing is rewritten, no dead tuple is left, `updated_at` keeps its
--   value and AFTER triggers do not see the row. The statement's row count excludes it.
-- * A maintenance write is left alone: inside a transaction that ran
--   `SET LOCAL trackschema.maintenance = 'on'` (backfills, repairs) the row is written
--   as the statement says, no-op or not (so the statement's row count and RETURNING
--   cover every row it matched), and `updated_at` is not bumped. Unset means off.
-- * Otherwise `updated_at` becomes now() (the transaction's start time).
--
-- The trigger is named `update_updated_at` on every table: BEFORE triggers fire in name
-- order, so it runs after other BEFORE triggers with earlier names (dual-write copies,
-- defaults) and compares the row they produced.
CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR TG_WHEN <> 'BEFORE' OR TG_LEVEL <> 'ROW' THEN
        RAISE EXCEPTION 'update_updated_at_column() must be a BEFORE UPDATE ... FOR EACH ROW trigger (on %.%)',
            TG_TABLE_SCHEMA, TG_TABLE_NAME;
    END IF;
    IF current_setting('trackschema.maintenance', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW *= OLD THEN
        RETURN NULL;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
