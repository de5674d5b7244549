"""Provisioning order: explicit URL, testcontainers, local binaries; clear failure."""

from __future__ import annotations

import os
import pwd

import psycopg
import pytest

from trackschema.runtime import provision as provision_module
from trackschema.errors import ProvisioningError
from trackschema.runtime.provision import PostgresServer, find_pg_bindir, provision, start_container


def test_explicit_url_wins() -> None:
    server = provision("postgresql://someone@example.invalid/db")
    assert server.kind == "url" and server.url == "postgresql://someone@example.invalid/db"


def test_local_cluster_runs_as_the_postgres_user_when_root_and_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKSCHEMA_PROVISION", "local")
    server = provision()
    try:
        assert server.kind == "local"
        with psycopg.connect(server.url) as conn:
            data_dir = conn.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
            assert conn.execute("SELECT setting FROM pg_settings WHERE name = 'listen_addresses'").fetchone() == ("127.0.0.1",)
        owner = pwd.getpwuid(os.stat(data_dir).st_uid).pw_name
        assert owner == ("postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name)
    finally:
        server.stop()
    assert not os.path.exists(data_dir)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.url, connect_timeout=2)


class _DockerException(Exception):
    pass


_DockerException.__name__ = "DockerException"


class _NoEngine:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise _DockerException("Error while fetching server API version: no such file")


class _FakeContainer:
    """Stands in for PostgresContainer where a Docker engine answers: started, URL, stopped."""

    started = stopped = False

    def __init__(self, image: str, driver: str | None = "psycopg2") -> None:
        self.image, self.driver = image, driver

    def start(self) -> "_FakeContainer":
        type(self).started = True
        return self

    def get_connection_url(self, driver: str | None = None) -> str:
        return "postgresql://test:test@127.0.0.1:55432/test"

    def stop(self) -> None:
        type(self).stopped = True


def test_no_docker_engine_falls_through_with_the_reason() -> None:
    tried: list[str] = []
    assert start_container(tried, container_class=_NoEngine) is None
    assert "no Docker engine answers" in tried[0]


def test_real_testcontainers_without_an_engine_is_skipped_over() -> None:
    # On a machine without a Docker engine (CI here), the real class raises DockerException.
    tried: list[str] = []
    server = start_container(tried)
    if server is not None:  # a Docker engine answers on this machine: that path works too
        assert server.kind == "container"
        server.stop()
    else:
        assert tried and tried[0].startswith("testcontainers:")


def test_a_container_is_used_when_an_engine_answers() -> None:
    tried: list[str] = []
    server = start_container(tried, container_class=_FakeContainer)
    assert isinstance(server, PostgresServer) and server.kind == "container"
    assert _FakeContainer.started and server.url.startswith("postgresql://test:test@")
    server.stop()
    assert _FakeContainer.stopped and tried == []


def test_nothing_found_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provision_module, "find_pg_bindir", lambda: None)
    monkeypatch.setattr(provision_module, "_container_class", lambda: _NoEngine)
    with pytest.raises(ProvisioningError) as raised:
        provision()
    message = str(raised.value)
    assert "apt-get install postgresql" in message and "no Docker engine" in message
    assert "\n" not in message


def test_bindir_search_finds_server_binaries() -> None:
    bindir = find_pg_bindir()
    assert bindir is not None and (bindir / "initdb").exists() and (bindir / "pg_ctl").exists()
