"""trackschema.scratch against a real server: create, clone, replace, drop, the context manager."""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest

from trackschema.runtime import scratch
from trackschema.errors import TrackschemaError
from trackschema.runtime.provision import PostgresServer

_names = itertools.count()


def fresh(prefix: str = "ts_scratch") -> str:
    return f"{prefix}_{os.getpid()}_{next(_names)}"


def exists(server: PostgresServer, name: str) -> bool:
    with scratch.admin(server.url) as conn:
        return conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 1  # type: ignore[index]


def tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def test_create_from_nothing_gives_an_empty_database_and_its_url(pg_server: PostgresServer) -> None:
    name = fresh()
    url = scratch.create_database(pg_server.url, name)
    try:
        assert url == scratch.database_url(pg_server.url, name) and url.startswith("postgresql://")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == name  # type: ignore[index]
        assert tables(url) == []
    finally:
        scratch.drop_database(pg_server.url, name)
    assert not exists(pg_server, name)


def test_create_from_a_template_copies_its_tables_and_rows(pg_server: PostgresServer) -> None:
    template, clone = fresh("ts_scratch_tpl"), fresh()
    with scratch.scratch_database(pg_server.url, template) as template_url:
        with psycopg.connect(template_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (id int PRIMARY KEY, label text)")
            conn.execute("INSERT INTO kept SELECT g, 'row ' || g FROM generate_series(1, 25) g")
        with scratch.scratch_database(pg_server.url, clone, template=template) as url:
            assert tables(url) == ["kept"]
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT count(*), max(label) FROM kept").fetchone() == (25, "row 9")
            assert exists(pg_server, template), "the template stays"
        assert not exists(pg_server, clone)
    assert not exists(pg_server, template)


def test_create_over_an_existing_database_replaces_it_and_ends_its_sessions(pg_server: PostgresServer) -> None:
    name = fresh()
    with scratch.scratch_database(pg_server.url, name) as url:
        live = psycopg.connect(url, autocommit=True)
        try:
            live.execute("CREATE TABLE old_one (id int)")
            assert scratch.create_database(pg_server.url, name) == url
            with pytest.raises(psycopg.OperationalError):
                live.execute("SELECT 1")  # terminated by DROP DATABASE ... WITH (FORCE)
        finally:
            live.close()
        assert tables(url) == [], "a new, empty database, not the old one"


def test_dropping_a_database_that_does_not_exist_is_fine(pg_server: PostgresServer) -> None:
    name = fresh("ts_scratch_missing")
    assert not exists(pg_server, name)
    scratch.drop_database(pg_server.url, name)
    scratch.drop_database(pg_server.url, name)
    assert not exists(pg_server, name)


def test_the_context_manager_drops_at_exit_also_after_an_exception_and_with_a_session_open(pg_server: PostgresServer) -> None:
    name = fresh()
    live: psycopg.Connection | None = None
    with pytest.raises(RuntimeError, match="boom"):
        with scratch.scratch_database(pg_server.url, name) as url:
            assert exists(pg_server, name)
            live = psycopg.connect(url, autocommit=True)  # still open at exit: FORCE ends it
            raise RuntimeError("boom")
    assert live is not None
    live.close()
    assert not exists(pg_server, name)


def test_upgrade_to_migrates_and_a_failed_upgrade_still_drops(pg_server: PostgresServer) -> None:
    name = fresh()
    with scratch.scratch_database(pg_server.url, name, upgrade_to="0001_core_schema") as url:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001_core_schema",)]
    assert not exists(pg_server, name)
    with pytest.raises(TrackschemaError):
        with scratch.scratch_database(pg_server.url, name, upgrade_to="9999_no_such_revision"):
            pytest.fail("the block must not run when the upgrade fails")
    assert not exists(pg_server, name)


def test_a_name_that_needs_quoting_works_as_database_and_as_template(pg_server: PostgresServer) -> None:
    odd = f'ts "odd" name {os.getpid()}_{next(_names)}'
    with scratch.scratch_database(pg_server.url, odd) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == odd  # type: ignore[index]
            conn.execute("CREATE TABLE quoted (id int)")
        with scratch.scratch_database(pg_server.url, f"{odd} copy", template=odd) as copy_url:
            with psycopg.connect(copy_url) as conn:
                assert conn.execute("SELECT current_database()").fetchone()[0] == f"{odd} copy"  # type: ignore[index]
            assert tables(copy_url) == ["quoted"]
        url_again = scratch.create_database(pg_server.url, odd)
        assert url_again == url and tables(url) == []
    assert not exists(pg_server, odd) and not exists(pg_server, f"{odd} copy")
    with scratch.scratch_database(pg_server.url, odd, upgrade_to="0001_core_schema") as url:  # through SQLAlchemy too
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001_core_schema",)]
    assert not exists(pg_server, odd)
