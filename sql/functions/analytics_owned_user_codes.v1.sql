-- analytics_owned_user_codes(): the user codes the current role may read, from
-- analytics_user_code_owners: rows naming the current role itself or a role it has the
-- privileges of (pg_has_role USAGE: direct or inherited membership). Row-level security
-- policies call it once per query through an InitPlan: (SELECT analytics_owned_user_codes()).
-- SECURITY INVOKER on purpose: a SECURITY DEFINER function would see its owner as current_user.
CREATE FUNCTION analytics_owned_user_codes()
RETURNS text[]
LANGUAGE sql
STABLE
AS $fn$
    SELECT coalesce(array_agg(DISTINCT o.user_code), '{}'::text[])
      FROM analytics_user_code_owners AS o
      JOIN pg_catalog.pg_roles AS r ON r.rolname = o.role_name
     WHERE pg_catalog.pg_has_role(r.oid, 'USAGE')
$fn$;
