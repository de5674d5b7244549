"""URL resolution, masking and durations."""

from __future__ import annotations

import pytest

from trackschema.errors import ConfigurationError
from trackschema.settings import Settings, libpq_url, mask_password, parse_duration, sqlalchemy_url


def test_url_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://c@h/c")
    assert Settings.from_env().database_url == "postgresql://c@h/c"
    monkeypatch.setenv("TRACKSCHEMA_DATABASE_URL", "postgresql://b@h/b")
    assert Settings.from_env().database_url == "postgresql://b@h/b"
    assert Settings.from_env("postgresql://a@h/a").database_url == "postgresql://a@h/a"


def test_missing_url_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("TRACKSCHEMA_DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="--database-url"):
        Settings.from_env().require_url()


@pytest.mark.parametrize(
    "url",
    ["postgres://u:p@h:5/d", "postgresql://u:p@h:5/d", "postgresql+psycopg://u:p@h:5/d", "postgresql+psycopg2://u:p@h:5/d"],
)
def test_url_normalisation(url: str) -> None:
    assert sqlalchemy_url(url) == "postgresql+psycopg://u:p@h:5/d"
    assert libpq_url(url) == "postgresql://u:p@h:5/d"


def test_masking_never_leaks() -> None:
    assert mask_password("postgresql://u:secret@h/d") == "postgresql://u:***@h/d"
    assert "secret" not in mask_password("postgresql://u:secret@h:notaport/d")
    assert mask_password("postgresql://u@h/d") == "postgresql://u@h/d"


def test_durations() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("5s") == 5
    assert parse_duration("10min") == 600
    assert parse_duration("2h") == 7200
    assert parse_duration("90d") == 90 * 86400
    assert parse_duration("3") == 3
    with pytest.raises(ConfigurationError, match="bad duration"):
        parse_duration("soon")
