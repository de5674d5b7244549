-- analytics_may_read(user_code): may the current role read the analytics of this user code?
-- True when analytics_user_code_owners has a row for the code naming the current role itself
-- or a role it has the privileges of (pg_has_role USAGE: direct or inherited membership):
-- the same rule as analytics_owned_user_codes(), asked per row.
--
-- Citus only (revision 0101_citus_analytics): Citus refuses policies with subqueries on
-- distributed and reference tables, so the reader policies call this function instead of
-- (SELECT analytics_owned_user_codes()). It runs on the worker that holds the shard, as the
-- connecting role, and reads the reference table's copy there (an index probe on
-- idx_analytics_user_code_owners_user_code per row); 0101 distributes it
-- (create_distributed_function), so it exists on every node.
-- SECURITY INVOKER on purpose: a SECURITY DEFINER function would see its owner as current_user.
CREATE FUNCTION analytics_may_read(p_user_code text)
RETURNS boolean
LANGUAGE sql
STABLE
AS $fn$
    SELECT EXISTS (
        SELECT 1
          FROM analytics_user_code_owners AS o
          JOIN pg_catalog.pg_roles AS r ON r.rolname = o.role_name
         WHERE o.user_code = p_user_code
           AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
$fn$;
