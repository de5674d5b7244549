-- The acting user of this transaction, from the `app.current_user_id` setting the
-- application sets (`SET LOCAL app.current_user_id = '<uuid>'`).
--
-- Never raises: an unset setting, an empty string (what a setting reads as after a
-- SET LOCAL ended) or anything that is not a UUID gives NULL, so a bad value can never
-- make the user's write fail. Accepted spellings: 32 hex digits, with the four standard
-- hyphens or none, optionally in braces, any case; each of them is valid input for the
-- uuid type, so the cast below cannot fail.
--
-- Written as one expression without FROM so the planner inlines it into the caller.
CREATE OR REPLACE FUNCTION current_actor_id()
RETURNS uuid
LANGUAGE sql
STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN current_setting('app.current_user_id', true)
             ~* '^(\{[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}\}|[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12})$'
        THEN current_setting('app.current_user_id', true)::uuid
    END
$$;
