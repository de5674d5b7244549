"""Analytics: row-level security, an insert-only ingest role and owner-scoped readers.

Seed 003, "RLS Security Model": anyone may write analytics, users read only their own.
- Two roles (NOLOGIN; grant them to login roles): an ingest role that may INSERT into the
  raw tables and EXECUTE analytics_ingest(jsonb), nothing else (no SELECT, UPDATE, DELETE);
  and a reader role that may SELECT the raw and roll-up tables, where policies show it only
  the rows of the user codes it owns.
- `analytics_user_code_owners (role_name, user_code)`: which role owns which user code. A
  reader sees the user codes of rows naming itself or a role it is a member of (so a team
  role can own codes). Owners and the table owner bypass row security as usual; any other
  role that reads these tables needs a policy of its own (or BYPASSRLS) from now on.
- `trackschema.analytics_roles` records the role names this database uses.

Role names: `-x analytics_ingest_role=NAME -x analytics_reader_role=NAME`, else the
environment variables TRACKSCHEMA_ANALYTICS_INGEST_ROLE / TRACKSCHEMA_ANALYTICS_READER_ROLE,
else `trackschema_ingest` / `trackschema_reader` (lower-case identifiers only). Roles are
cluster-wide: an existing role is used as it is (a DBA may create them beforehand when the
migration user lacks CREATEROLE); a missing one is created and tagged with a comment.

Downgrade removes what this database has: the policies, row-level security, the grants to
the two roles, the ownership table (it refuses while that holds rows, unless run with
`--allow-data-loss`: who owns what cannot come back) and the roles table. The roles
themselves are cluster-wide and may serve other databases (a test template and its clones,
staging next to production): a role is dropped only when trackschema created it (its
comment says so), no database references it any more (pg_shdepend) and it has no members;
otherwise it is kept and a NOTICE says why and how to drop it by hand.

Revision ID: 0013_analytics_rls
Revises: 0012_analytics_ingest
Create Date: 2026-11-23
"""

from __future__ import annotations

import os
import re

from alembic import context, op

from trackschema.errors import ConfigurationError
from trackschema.migration_ops import execute_sql_file, refuse_data_loss

revision: str = "0013_analytics_rls"
down_revision: str | None = "0012_analytics_ingest"
branch_labels = None
depends_on = None

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
ROLE_COMMENT = "created by trackschema for analytics"


def role_name(purpose: str) -> str:
    """The configured name of the `ingest` or `reader` role (validated: a plain identifier)."""
    x_args = context.get_x_argument(as_dictionary=True)
    name = (
        x_args.get(f"analytics_{purpose}_role")
        or os.environ.get(f"TRACKSCHEMA_ANALYTICS_{purpose.upper()}_ROLE")
        or f"trackschema_{purpose}"
    )
    if not ROLE_NAME.fullmatch(name):
        raise ConfigurationError(
            f"bad analytics {purpose} role name {name!r}: use a lower-case identifier (letters, digits, _)"
        )
    return name


RAW_TABLES = ["analytics_sessions", "analytics_page_views", "analytics_clicks"]
ROLLUP_TABLES = [
    "analytics_daily_user_stats",
    "analytics_daily_group_stats",
    "analytics_daily_click_targets",
    "analytics_daily_page_stats",
]
READER_FUNCTIONS = [
    "analytics_owned_user_codes()",
    "analytics_rollup_coverage(date, date)",
    "analytics_daily_stats_raw(text, date, date)",
    "analytics_dashboard_daily(text, date, date)",
    "analytics_dashboard_pages(text, date, date)",
    "analytics_dashboard_clicks(text, date, date)",
    "analytics_dashboard_shares(text, date, date)",
]


def _sql_array(items: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{item}'" for item in items) + "]"


CREATE_ROLES = f"""
DO $roles$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT purpose, role_name FROM trackschema.analytics_roles ORDER BY purpose LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r.role_name);
                EXECUTE format('COMMENT ON ROLE %I IS %L', r.role_name, '{ROLE_COMMENT} (' || r.purpose || ')');
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created meanwhile by a migration of another database of this cluster
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'cannot create the analytics % role %: the migration user lacks CREATEROLE',
                                    r.purpose, r.role_name
                        USING HINT = format('have a DBA run CREATE ROLE %I NOLOGIN, or name an existing role '
                                            'with -x analytics_%s_role=NAME', r.role_name, r.purpose);
            END;
        END IF;
    END LOOP;
END
$roles$;
"""

OWNERS = """
CREATE TABLE analytics_user_code_owners (
    role_name  name NOT NULL,
    user_code  text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_name, user_code)
);
COMMENT ON TABLE analytics_user_code_owners IS
    'which role (a login role, or a group role whose members inherit it) may read the analytics of which user code';
CREATE INDEX idx_analytics_user_code_owners_user_code ON analytics_user_code_owners (user_code);
"""

POLICIES = f"""
DO $policies$
DECLARE
    v_ingest name := (SELECT role_name FROM trackschema.analytics_roles WHERE purpose = 'ingest');
    v_reader name := (SELECT role_name FROM trackschema.analytics_roles WHERE purpose = 'reader');
    t text;
BEGIN
    FOREACH t IN ARRAY {_sql_array(RAW_TABLES)} LOOP
        EXECUTE format('GRANT INSERT ON %I TO %I', t, v_ingest);
        EXECUTE format('CREATE POLICY analytics_ingest_insert ON %I FOR INSERT TO %I WITH CHECK (true)', t, v_ingest);
    END LOOP;
    FOREACH t IN ARRAY {_sql_array(RAW_TABLES + ROLLUP_TABLES)} LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('GRANT SELECT ON %I TO %I', t, v_reader);
        EXECUTE format('CREATE POLICY analytics_reader_own ON %I FOR SELECT TO %I '
                       'USING (user_code = ANY ((SELECT analytics_owned_user_codes())::text[]))', t, v_reader);
    END LOOP;
    ALTER TABLE analytics_user_code_owners ENABLE ROW LEVEL SECURITY;
    EXECUTE format('GRANT SELECT ON analytics_user_code_owners TO %I', v_reader);
    EXECUTE format('CREATE POLICY analytics_reader_own ON analytics_user_code_owners FOR SELECT TO %I '
                   'USING (EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r '
                   'WHERE r.rolname = analytics_user_code_owners.role_name '
                   'AND pg_catalog.pg_has_role(r.oid, ''USAGE'')))', v_reader);
    -- the dashboard functions read which days the roll-ups cover
    EXECUTE format('GRANT USAGE ON SCHEMA trackschema TO %I', v_reader);
    EXECUTE format('GRANT SELECT ON trackschema.analytics_rollup_days TO %I', v_reader);
    EXECUTE format('GRANT EXECUTE ON FUNCTION analytics_ingest(jsonb) TO %I', v_ingest);
    FOREACH t IN ARRAY {_sql_array(READER_FUNCTIONS)} LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', t, v_reader);
    END LOOP;
END
$policies$;
"""

UNDO_POLICIES = f"""
DO $undo$
DECLARE
    v_ingest name := (SELECT role_name FROM trackschema.analytics_roles WHERE purpose = 'ingest');
    v_reader name := (SELECT role_name FROM trackschema.analytics_roles WHERE purpose = 'reader');
    t text;
BEGIN
    FOREACH t IN ARRAY {_sql_array(RAW_TABLES + ROLLUP_TABLES + ["analytics_user_code_owners"])} LOOP
        EXECUTE format('DROP POLICY IF EXISTS analytics_reader_own ON %I', t);
        EXECUTE format('DROP POLICY IF EXISTS analytics_ingest_insert ON %I', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_ingest) THEN
        FOREACH t IN ARRAY {_sql_array(RAW_TABLES)} LOOP
            EXECUTE format('REVOKE ALL ON %I FROM %I', t, v_ingest);
        END LOOP;
        EXECUTE format('REVOKE ALL ON FUNCTION analytics_ingest(jsonb) FROM %I', v_ingest);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_reader) THEN
        FOREACH t IN ARRAY {_sql_array(RAW_TABLES + ROLLUP_TABLES + ["analytics_user_code_owners"])} LOOP
            EXECUTE format('REVOKE ALL ON %I FROM %I', t, v_reader);
        END LOOP;
        EXECUTE format('REVOKE ALL ON SCHEMA trackschema FROM %I', v_reader);
        EXECUTE format('REVOKE ALL ON trackschema.analytics_rollup_days FROM %I', v_reader);
        FOREACH t IN ARRAY {_sql_array(READER_FUNCTIONS)} LOOP
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', t, v_reader);
        END LOOP;
    END IF;
END
$undo$;
"""

DROP_UNUSED_ROLES = f"""
DO $drop_roles$
DECLARE
    r record;
    v_dbs text;
BEGIN
    FOR r IN SELECT a.role_name, p.oid, shobj_description(p.oid, 'pg_authid') AS note
               FROM trackschema.analytics_roles AS a JOIN pg_roles AS p ON p.rolname = a.role_name
              ORDER BY a.purpose LOOP
        SELECT string_agg(DISTINCT coalesce(d.datname, 'the cluster'), ', ') INTO v_dbs
          FROM pg_shdepend AS s LEFT JOIN pg_database AS d ON d.oid = s.dbid
         WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid;
        IF r.note IS NULL OR r.note NOT LIKE '{ROLE_COMMENT}%' THEN
            RAISE NOTICE 'keeping role %: trackschema did not create it', r.role_name;
        ELSIF v_dbs IS NOT NULL THEN
            RAISE NOTICE 'keeping role %: still used in %', r.role_name, v_dbs;
        ELSIF EXISTS (SELECT 1 FROM pg_auth_members AS m WHERE m.roleid = r.oid OR m.member = r.oid) THEN
            RAISE NOTICE 'keeping role %: it has members or memberships (DROP ROLE % by hand when unused)',
                         r.role_name, r.role_name;
        ELSE
            BEGIN
                EXECUTE format('DROP ROLE %I', r.role_name);
            EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
                RAISE NOTICE 'keeping role %: %', r.role_name, SQLERRM;
            END;
        END IF;
    END LOOP;
END
$drop_roles$;
"""


def upgrade() -> None:
    ingest, reader = role_name("ingest"), role_name("reader")
    if ingest == reader:
        raise ConfigurationError("the analytics ingest and reader roles must differ: set two names")
    op.execute(
        """CREATE TABLE trackschema.analytics_roles (
               purpose   text PRIMARY KEY CONSTRAINT analytics_roles_purpose_check CHECK (purpose IN ('ingest', 'reader')),
               role_name name NOT NULL UNIQUE
           )"""
    )
    op.execute(f"INSERT INTO trackschema.analytics_roles (purpose, role_name) VALUES ('ingest', '{ingest}'), ('reader', '{reader}')")
    op.execute(CREATE_ROLES)
    op.execute(OWNERS)
    execute_sql_file("functions/analytics_owned_user_codes.v1.sql")
    op.execute(POLICIES)


def downgrade() -> None:
    refuse_data_loss(["analytics_user_code_owners"], "drop the analytics user-code ownership table")
    op.execute(UNDO_POLICIES)
    op.execute("DROP FUNCTION analytics_owned_user_codes()")
    op.execute("DROP TABLE analytics_user_code_owners")
    op.execute(DROP_UNUSED_ROLES)
    op.execute("DROP TABLE trackschema.analytics_roles")
