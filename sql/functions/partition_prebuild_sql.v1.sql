-- trackschema.partition_prebuild_sql(tbl): the CREATE UNIQUE INDEX CONCURRENTLY statements
-- to run (outside a transaction, one by one) before the swap step of a conversion or of a
-- reversal, so that the swap itself only has catalog work to do under its lock.
--
-- Converting (tbl is still a plain table, prepared): a partitioned table's primary key
-- must include the partition key, so the history partition needs a unique index on
-- (primary key columns, key), named <table>_history_pkey.
-- Reverting (tbl is partitioned by trackschema): the table given back needs its original
-- primary key again, so the partition that becomes the plain table (the history
-- partition, or the oldest one) gets a unique index on the original key columns,
-- <partition>_restore_pkey.
-- An INVALID index left by an interrupted build is dropped first. Returns nothing when
-- there is nothing to build; a rerun returns nothing once the index exists.
CREATE OR REPLACE FUNCTION trackschema.partition_prebuild_sql(tbl regclass)
RETURNS SETOF text
LANGUAGE plpgsql
STABLE
AS $fn$
DECLARE
    nsp name;
    rel name;
    kind "char";
    reg trackschema.partitioned_tables;
    target regclass;
    target_rel name;
    idx_name text;
    cols name[];
    existing record;
BEGIN
    SELECT n.nspname, c.relname, c.relkind INTO nsp, rel, kind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    SELECT * INTO reg FROM trackschema.partitioned_tables r WHERE r.parent_schema = nsp AND r.parent_name = rel;
    IF reg.parent_name IS NULL THEN
        RETURN;
    END IF;
    IF kind = 'r' THEN
        SELECT array_agg(a.attname ORDER BY k.ord) INTO cols
          FROM pg_constraint c
          CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
         WHERE c.conrelid = tbl AND c.contype = 'p';
        IF cols IS NULL OR reg.key_column = ANY (cols) THEN
            RETURN;
        END IF;
        target := tbl;
        idx_name := left(reg.history_partition, 58) || '_pkey';
        cols := cols || reg.key_column;
    ELSIF kind = 'p' AND reg.state = 'partitioned' THEN
        cols := reg.original_pkey_columns;
        IF cols IS NULL OR reg.key_column = ANY (cols) THEN
            RETURN;
        END IF;
        SELECT b.partition INTO target
          FROM trackschema.partition_bounds(tbl) b
         ORDER BY (b.partition = to_regclass(format('%I.%I', nsp, reg.history_partition))) DESC, b.is_default, b.lower_bound NULLS FIRST
         LIMIT 1;
        IF target IS NULL THEN
            RETURN;
        END IF;
        SELECT c.relname INTO target_rel FROM pg_class c WHERE c.oid = target;
        idx_name := left(target_rel, 50) || '_restore_pkey';
    ELSE
        RETURN;
    END IF;

    SELECT i.indrelid, i.indisvalid INTO existing
      FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid
     WHERE ic.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = nsp) AND ic.relname = idx_name;
    IF existing.indrelid = target AND existing.indisvalid THEN
        RETURN;
    END IF;
    IF existing.indrelid IS NOT NULL THEN
        RETURN NEXT format('DROP INDEX CONCURRENTLY IF EXISTS %I.%I', nsp, idx_name);
    END IF;
    RETURN NEXT format('CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS %I ON %s (%s)', idx_name, target,
                       (SELECT string_agg(quote_ident(col), ', ' ORDER BY ord) FROM unnest(cols) WITH ORDINALITY AS u(col, ord)));
END
$fn$;
