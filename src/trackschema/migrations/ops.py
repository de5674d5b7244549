"""Helpers used inside revisions. Each emits SQL through `op.execute`, so it works the
same online and in offline `--sql` mode."""

from __future__ import annotations

from alembic import op
from psycopg import sql

from trackschema.runtime.db import quote_ident, timeout_statements

from trackschema.runtime.settings import parse_duration, project_root




def read_sql(relative_path: str) -> str:
    """The text of `sql/<relative_path>`. Revisions name versioned files that never change."""
    path = project_root() / "sql" / relative_path
    return path.read_text()


def execute_sql_file(relative_path: str) -> None:
    """Run one file from `sql/` (one function or trigger per file)."""
    op.execute(read_sql(relative_path))


def local_timeouts(*, lock: str | None = None, statement: str | None = None) -> None:
    """Override the session's lock/statement timeout for this revision's transaction only."""
    for statement_text in timeout_statements(
        lock_timeout=parse_duration(lock) if lock is not None else None,
        statement_timeout=parse_duration(statement) if statement is not None else None,
        local=True,
    ):
        op.execute(statement_text)


def refuse_data_loss(tables: list[str], action: str) -> None:
    """Abort the revision if any of `tables` holds a row, unless data loss was allowed.

    `trackschema downgrade --allow-data-loss` (or `alembic -x allow_data_loss=true`)
    sets `trackschema.allow_data_loss = on` for the session.

    Every downgrade guard is a `DO $guard$ ... $guard$` block that only reads and raises:
    `trackschema downgrade` runs all the guards of its path before the first step
    (`migrate.check_downgrade_guards`), so a refusal never leaves the path half done.
    The guard inside the revision still catches rows written meanwhile, and plain `alembic`.
    """
    checks = sql.SQL(" OR ").join(
        sql.SQL("EXISTS (SELECT 1 FROM {})").format(quote_ident(table)) for table in tables
    )
    message = sql.Literal(f"refusing to {action}: the tables still hold rows")
    op.execute(
        sql.SQL(
            """
DO $guard$
BEGIN
    IF coalesce(current_setting('trackschema.allow_data_loss', true), '') <> 'on' AND ({checks}) THEN
        RAISE EXCEPTION {message}
            USING HINT = 'back the data up, then rerun with --allow-data-loss';
    END IF;
END
$guard$;
"""
        ).format(checks=checks, message=message).as_string(None)
    )
