-- Time-ordered UUID (RFC 9562 version 7): 48-bit Unix milliseconds, then random bits.
-- New rows land at the right-hand edge of the primary-key B-tree instead of at random
-- pages, which keeps inserts into large tables cache-friendly. PostgreSQL 18 ships
-- uuidv7(); this function gives the same layout on 13+ (gen_random_uuid is core).
CREATE OR REPLACE FUNCTION uuid_generate_v7()
RETURNS uuid
LANGUAGE sql
VOLATILE PARALLEL SAFE
AS $$
    SELECT encode(
        set_bit(
            set_bit(
                overlay(uuid_send(gen_random_uuid())
                        PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;
