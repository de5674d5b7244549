"""What the database says about Citus: one place for the two questions the commands ask
(whether the citus extension is installed, whether a table is distributed). Read-only
catalog queries; on plain PostgreSQL both answer False without touching a Citus relation."""

from __future__ import annotations

import psycopg


def is_citus(conn: psycopg.Connection) -> bool:
    """The citus extension is installed in this database (a coordinator or a worker)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')").fetchone()
    return bool(row and row[0])


def is_distributed(conn: psycopg.Connection, table: str) -> bool:
    """`table` (a name; a missing table is not distributed) is a Citus distributed table here:
    hash- or range-distributed, not a reference table."""
    if not is_citus(conn):
        return False
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass(%s) AND partmethod <> 'n')",
                       (table,)).fetchone()
    return bool(row and row[0])
