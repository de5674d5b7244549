"""An index left INVALID the way a failed CREATE INDEX CONCURRENTLY leaves one, for the
catalog and check tests."""

from __future__ import annotations

import psycopg
import pytest


def leave_contacts_name_index_invalid(conn: psycopg.Connection, db_url: str) -> None:
    """Drop public.idx_contacts_name and build it again concurrently until it fails: a
    writer's open transaction makes CREATE INDEX CONCURRENTLY wait after its first phase
    (the index is in the catalog, not valid yet), and the statement timeout ends it there."""
    conn.execute("DROP INDEX public.idx_contacts_name")
    with psycopg.connect(db_url) as writer:
        writer.execute("LOCK TABLE public.contacts IN ROW EXCLUSIVE MODE")
        conn.execute("SET statement_timeout = '300ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("CREATE INDEX CONCURRENTLY idx_contacts_name ON public.contacts (last_name, first_name)")
        conn.execute("RESET statement_timeout")
        writer.rollback()
