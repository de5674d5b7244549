-- analytics_role_usable(role): is this an existing role whose privileges the current role has
-- (pg_has_role USAGE)? False for a role that does not exist (pg_has_role would fail on it).
--
-- Citus only (revision 0101_citus_analytics): the reader policy of the reference table
-- analytics_user_code_owners calls it instead of revision 0013's EXISTS (SELECT ... FROM
-- pg_roles ...), a subquery Citus refuses in a policy. Distributed to every node by 0101.
CREATE FUNCTION analytics_role_usable(p_role name)
RETURNS boolean
LANGUAGE sql
STABLE
AS $fn$
    SELECT EXISTS (
        SELECT 1
          FROM pg_catalog.pg_roles AS r
         WHERE r.rolname = p_role
           AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
$fn$;
