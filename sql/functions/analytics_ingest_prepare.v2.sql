-- analytics_ingest_prepare() v2: give this session the tables of the streaming ingest
-- (`trackschema ingest`), idempotently. Per batch the client then runs, in one transaction:
-- COPY its lines into pg_temp.analytics_ingest_lines, analytics_ingest_check(), then
-- analytics_ingest_land().
--
--   pg_temp.analytics_ingest_lines    what the client COPYs: one row per line of the source,
--     (line, body, reason)             its number and text; reason set (and body holding the
--                                      start of the line) when the client refused it unread
--                                      (longer than its limit, or not text)
--   pg_temp.analytics_ingest_staging  the checked events analytics_ingest_check() keeps for
--                                      analytics_ingest_land(), one row per event, typed
--
-- Both are temporary (private to the session, no WAL) and ON COMMIT DELETE ROWS: a batch's
-- rows are gone when its transaction ends, committed or rolled back.
--
-- SECURITY DEFINER: the tables belong to the function's owner, so the functions that read
-- them (also SECURITY DEFINER) read tables nobody else can alter (no trigger, rule or view
-- slipped under their names). The caller, typically the insert-only ingest role, gets INSERT
-- on the lines table only, which is all COPY needs; the staging table is written by
-- analytics_ingest_check() alone. The grant goes to PUBLIC because the caller may act
-- through SET ROLE; no other session can reach a temporary table anyway. A table of either
-- name the caller made itself is refused.
--
-- v2 (revision 0103): the lines table keeps its bodies uncompressed (STORAGE EXTERNAL). A
-- line is a batch of up to 10,000 events, far over the size PostgreSQL compresses at, and v1
-- compressed every one (pglz) on COPY only to decompress it once in the check, the same
-- session, the same transaction: that was most of the COPY's server time (2.25 µs an
-- event of 1000-event lines against 0.95 µs without). A session that made its tables under
-- v1 keeps them as they are.
CREATE OR REPLACE FUNCTION analytics_ingest_prepare()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_me    oid := (SELECT r.oid FROM pg_roles AS r WHERE r.rolname = current_user);
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['analytics_ingest_lines', 'analytics_ingest_staging'] LOOP
        IF to_regclass('pg_temp.' || v_table) IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_class AS c
                            WHERE c.oid = to_regclass('pg_temp.' || v_table) AND c.relkind = 'r' AND c.relowner = v_me) THEN
            RAISE EXCEPTION 'pg_temp.% was not made by analytics_ingest_prepare()', v_table
                USING HINT = 'drop it; analytics_ingest_prepare() creates the tables of the streaming ingest itself';
        END IF;
    END LOOP;
    IF to_regclass('pg_temp.analytics_ingest_lines') IS NULL THEN
        CREATE TEMPORARY TABLE analytics_ingest_lines (
            line   integer NOT NULL,
            body   text NOT NULL,
            reason text
        ) ON COMMIT DELETE ROWS;
        ALTER TABLE pg_temp.analytics_ingest_lines ALTER COLUMN body SET STORAGE EXTERNAL;
        GRANT INSERT ON TABLE pg_temp.analytics_ingest_lines TO PUBLIC;
    END IF;
    IF to_regclass('pg_temp.analytics_ingest_staging') IS NULL THEN
        CREATE TEMPORARY TABLE analytics_ingest_staging (
            line        integer NOT NULL,
            idx         integer NOT NULL,
            type        text NOT NULL,
            id          uuid,
            session_id  text NOT NULL,
            user_code   text NOT NULL,
            share_code  text,
            contact_id  uuid,
            target      text,
            category    text,
            ip_address  text,
            user_agent  text,
            referrer    text,
            ts          timestamptz NOT NULL,
            ts2         timestamptz
        ) ON COMMIT DELETE ROWS;
    END IF;
END
$fn$;
