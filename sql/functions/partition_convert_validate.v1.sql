-- trackschema.partition_convert_validate(tbl): step 2 of the conversion. VALIDATE
-- CONSTRAINT scans the table under SHARE UPDATE EXCLUSIVE, which does not block reads or
-- writes; afterwards the validated check lets ATTACH PARTITION skip its own scan. When a
-- row dated at or after the boundary slipped in between step 1 reading the newest row
-- and adding the check, the error says to rerun: step 1 then sees the newer row, drops
-- the check and adds one with a later boundary. Until then the NOT VALID check keeps
-- refusing rows dated at or after the boundary. Does nothing once the table is converted.
CREATE OR REPLACE FUNCTION trackschema.partition_convert_validate(tbl regclass)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    rel name;
    kind "char";
    cname text;
BEGIN
    SELECT c.relname, c.relkind INTO rel, kind FROM pg_class c WHERE c.oid = tbl;
    IF kind = 'p' THEN
        RETURN;
    END IF;
    cname := left(rel, 47) || '_partition_bound';
    IF NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = tbl AND c.conname = cname) THEN
        RAISE EXCEPTION 'cannot validate the partition bound of %: constraint % is missing', tbl, cname
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'run trackschema.partition_convert_prepare first';
    END IF;
    BEGIN
        EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', tbl, cname);
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'cannot partition %: rows dated after the chosen boundary arrived while it was being prepared', tbl
            USING ERRCODE = 'check_violation', HINT = 'run the upgrade again: the boundary is recomputed from the newest row';
    END;
END
$fn$;
