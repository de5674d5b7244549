-- analytics_may_read(user_code): may the current role read the analytics of this user code?
-- (Needs analytics_role_usable(name), created before it.)
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
-- citus.allow_nested_distributed_execution: the lookup is a query on a Citus table made from
-- inside a shard query, which Citus refuses by default ("cannot execute a distributed query
-- from a query on a shard") because a nested query may read rows of other nodes that the
-- outer one does not see consistently. Here it reads a reference table, whose copy every
-- node holds and which changes only in two-phase-committed transactions: the nested read is
-- a local read of that copy, so it is allowed for this function alone.
-- SECURITY INVOKER on purpose: a SECURITY DEFINER function would see its owner as current_user.
CREATE FUNCTION analytics_may_read(p_user_code text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SET citus.allow_nested_distributed_execution = on
AS $fn$
DECLARE
    v_role name;
BEGIN
    -- two steps: Citus would send a join of the reference table with pg_roles to a node
    -- with the view expanded (pg_authid, which a reader may not read)
    FOR v_role IN SELECT o.role_name FROM analytics_user_code_owners AS o WHERE o.user_code = p_user_code LOOP
        IF analytics_role_usable(v_role) THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$fn$;
