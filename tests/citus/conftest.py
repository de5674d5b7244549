"""Fixtures of the Citus tests (docs/citus.md). Every test here is marked
`xdist_group("citus")`, so one pytest-xdist worker starts the session's cluster once.

`citus_head`: ONE Citus database at head for the whole session (a Citus database cannot be
the template of another, and `upgrade head` on Citus takes seconds), for the tests that
only add their own rows: never downgrade it, never change its schema, and use values of
your own (fresh uuids, your own user codes) so the tests do not see each other's rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trackschema.migrations import runner
from trackschema.runtime.provision import CitusCluster
from trackschema.testing.databases import Database, citus_database


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/citus/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.xdist_group("citus"))


@pytest.fixture(scope="session")
def citus_head(trackschema_citus_cluster: CitusCluster) -> Iterator[Database]:
    """A Citus database (every node) at head, shared by the session: see the module docstring."""
    with citus_database(trackschema_citus_cluster, "trackschema_citus_head") as db:
        runner.upgrade(db.settings, "head")
        yield db
