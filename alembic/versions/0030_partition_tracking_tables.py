"""Monthly range partitions for activity_log and analytics_events, converted online.

Which tables: `TRACKSCHEMA_PARTITIONED_TABLES` (see `settings.partition_declarations`),
by default `activity_log` (key `occurred_at`) and `analytics_events` (key `created_at`);
a table of the default declaration that an earlier revision removed is skipped, a table
declared explicitly must exist.
What happened is recorded in `trackschema.partitioned_tables`, so the downgrade undoes
exactly that whatever the declaration says by then.

No long lock on a populated table. The existing table becomes the history partition,
covering everything before the start of next month (or of the month after its newest
row): the catalog-driven work runs server-side in `trackschema.partition_convert_*`
(sql/functions), in autocommit steps:
  1. prepare: CHECK (key IS NOT NULL AND key < boundary) NOT VALID; an instant change,
     its lock wait bounded by a short lock_timeout (min(lock_timeout, 500ms)) and retried;
  2. validate: VALIDATE CONSTRAINT scans under SHARE UPDATE EXCLUSIVE (writes go on);
  3. prebuild (online only): CREATE UNIQUE INDEX CONCURRENTLY on (primary key, key),
     since a partitioned table's primary key must include the partition key;
  4. swap: one short transaction of catalog work (rename, create the partitioned parent
     with the same columns, constraints, indexes, triggers, policies, grants; ATTACH
     the old table without a scan thanks to the validated check; add the months ahead).

Offline (`--sql`) the revision cannot read the catalog, so it emits the same calls
without step 3; the swap then builds that unique index itself when the table is small
(an empty database), and refuses a large table, naming the statements to run first.

Every declared table is checked before any is changed; a refused table (say one that
foreign keys reference) fails the revision and, online, leaves the database exactly at
the previous revision. A failure after a table was prepared (a lock never obtained)
keeps the prepared state: rerunning the upgrade resumes.

Rows outside every partition: no default partition unless declared (`table+default`),
so such a row is refused by PostgreSQL with "no partition of relation ... found for
row"; `trackschema partitions ensure` keeps months ahead.

Downgrade gives back plain tables with every row of every attached partition (rows of
partitions already retired with `partitions retire` are not brought back). Its lock
cost: online, the unique index for the original primary key is built CONCURRENTLY
first; then one transaction holds ACCESS EXCLUSIVE on each table while the rows of the
monthly partitions (everything since the conversion) are copied into the history table
(measured: 847k rows in 25 s, a writer blocked 19 s); readers and writers of that table
wait for it.

Revision ID: 0030_partition_tracking_tables
Revises: 0023_promotion_contract
Create Date: 2026-11-22
"""

from __future__ import annotations

import os

from alembic import context, op
from sqlalchemy import text

from trackschema.migration_ops import execute_sql_file
from trackschema.settings import PARTITIONED_TABLES_ENV, Settings, partition_declarations, pg_interval

revision: str = "0030_partition_tracking_tables"
down_revision: str | None = "0023_promotion_contract"
branch_labels = None
depends_on = None

# In dependency order (each file is one function; later ones call earlier ones).
FUNCTIONS = [
    ("functions/partition_bound_literal.v1.sql", "trackschema.partition_bound_literal(regtype, timestamptz)"),
    ("functions/partition_bounds.v1.sql", "trackschema.partition_bounds(regclass)"),
    ("functions/partition_create.v1.sql", "trackschema.partition_create(regclass, timestamptz, timestamptz)"),
    ("functions/partition_ensure.v1.sql", "trackschema.partition_ensure(integer, regclass)"),
    ("functions/partition_convert_prepare.v1.sql", "trackschema.partition_convert_prepare(regclass, name, integer, boolean, interval, integer, boolean)"),
    ("functions/partition_convert_validate.v1.sql", "trackschema.partition_convert_validate(regclass)"),
    ("functions/partition_prebuild_sql.v1.sql", "trackschema.partition_prebuild_sql(regclass)"),
    ("functions/partition_convert_swap.v1.sql", "trackschema.partition_convert_swap(regclass, interval, integer, bigint)"),
    ("functions/partition_unconvert.v1.sql", "trackschema.partition_unconvert(regclass, interval, integer, bigint)"),
]

REGISTRY = """
CREATE TABLE IF NOT EXISTS trackschema.partitioned_tables (
    parent_schema         name NOT NULL,
    parent_name           name NOT NULL,
    key_column            name NOT NULL,
    months_ahead          integer NOT NULL DEFAULT 3
        CONSTRAINT partitioned_tables_months_ahead_check CHECK (months_ahead BETWEEN 0 AND 120),
    default_partition     boolean NOT NULL DEFAULT false,
    history_partition     name,
    history_upper         timestamptz,
    original_pkey         name,
    original_pkey_columns name[],
    state                 text NOT NULL DEFAULT 'preparing'
        CONSTRAINT partitioned_tables_state_check CHECK (state IN ('preparing', 'partitioned')),
    converted_at          timestamptz,
    PRIMARY KEY (parent_schema, parent_name)
);
COMMENT ON TABLE trackschema.partitioned_tables IS
    'tables trackschema converted to monthly range partitions; read by partitions ensure/list/retire and by the downgrade';
"""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _settings() -> Settings:
    return context.config.attributes.get("settings") or Settings.from_env()


def _step_lock_timeout() -> str:
    """Writers queue behind a waiting ACCESS EXCLUSIVE request: keep that wait short."""
    return _literal(pg_interval(min(_settings().lock_timeout, 0.5)))


def _offline() -> bool:
    return op.get_context().as_sql


def _run_prebuild(table: str) -> None:
    rows = op.get_bind().execute(
        text("SELECT trackschema.partition_prebuild_sql(to_regclass(:t)) WHERE to_regclass(:t) IS NOT NULL"), {"t": table}
    ).fetchall()
    for (statement,) in rows:
        op.execute(statement)


def upgrade() -> None:
    op.execute(REGISTRY)
    for path, _signature in FUNCTIONS:
        execute_sql_file(path)
    declared = partition_declarations()
    explicit = bool(os.environ.get(PARTITIONED_TABLES_ENV))
    timeout = _step_lock_timeout()
    with op.get_context().autocommit_block():
        try:
            # Every declared table is checked before any is changed: a refusal leaves all as
            # they were. A table of the default declaration that an earlier revision removed
            # is skipped; one declared explicitly must exist.
            for decl in declared:
                if explicit:
                    op.execute(f"SELECT trackschema.partition_convert_prepare({_literal(decl.table)}, {_literal(decl.key)}, check_only => true)")
            for decl in declared:
                table = f"to_regclass({_literal(decl.table)})"
                only_if_present = f" WHERE {table} IS NOT NULL"
                op.execute(f"SELECT trackschema.partition_convert_prepare({table}, {_literal(decl.key)}, check_only => true){only_if_present}")
            for decl in declared:
                table = f"to_regclass({_literal(decl.table)})"
                only_if_present = f" WHERE {table} IS NOT NULL"
                op.execute(
                    f"SELECT trackschema.partition_convert_prepare({table}, {_literal(decl.key)}, {decl.months_ahead}, "
                    f"{'true' if decl.default_partition else 'false'}, {timeout}){only_if_present}"
                )
                op.execute(f"SELECT trackschema.partition_convert_validate({table}){only_if_present}")
                if not _offline():
                    _run_prebuild(decl.table)
                op.execute(f"SELECT trackschema.partition_convert_swap({table}, {timeout}){only_if_present}")
        except Exception:
            if not _offline():
                _forget_if_untouched()
            raise


def _forget_if_untouched() -> None:
    """After a failure (online), drop what the committed first part installed when no
    table was prepared or converted, so the database is exactly at the previous revision.
    Otherwise keep it: rerunning the upgrade resumes from where it stopped."""
    drops = "; ".join(f"DROP FUNCTION {signature}" for _path, signature in reversed(FUNCTIONS))
    op.get_bind().exec_driver_sql(
        "DO $forget$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM trackschema.partitioned_tables) THEN "
        f"{drops}; DROP TABLE trackschema.partitioned_tables; "
        "END IF; END $forget$"
    )


def downgrade() -> None:
    timeout = _step_lock_timeout()
    with op.get_context().autocommit_block():
        if _offline():
            op.execute(
                f"SELECT trackschema.partition_unconvert(format('%I.%I', parent_schema, parent_name)::regclass, {timeout}) "
                "FROM trackschema.partitioned_tables ORDER BY parent_schema, parent_name"
            )
        else:
            tables = op.get_bind().execute(
                text("SELECT format('%I.%I', parent_schema, parent_name) FROM trackschema.partitioned_tables ORDER BY parent_schema, parent_name")
            ).fetchall()
            for (table,) in tables:
                _run_prebuild(table)
                op.execute(f"SELECT trackschema.partition_unconvert({_literal(table)}, {timeout})")
    for _path, signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP TABLE trackschema.partitioned_tables")
