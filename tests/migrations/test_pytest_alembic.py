"""pytest-alembic's built-in checks against real PostgreSQL, through our own env.py.

pytest-alembic hands env.py an Engine through `config.attributes["connection"]`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy
from pytest_alembic.tests import (  # noqa: F401 - collected as tests
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

from tests.conftest import make_settings
from trackschema.migrations import runner as migrate
from trackschema.runtime.settings import sqlalchemy_url


@pytest.fixture
def alembic_config(empty_db_url: str):  # noqa: ANN201
    return migrate.alembic_config(make_settings(empty_db_url))


@pytest.fixture
def alembic_engine(empty_db_url: str) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(sqlalchemy_url(empty_db_url), poolclass=sqlalchemy.pool.NullPool)
    yield engine
    engine.dispose()
