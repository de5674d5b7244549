"""URL resolution, masking and durations."""

from __future__ import annotations

import re

import pytest

from trackschema.errors import ConfigurationError
from trackschema.operations.inputs import InputError
from trackschema.runtime.settings import Settings, libpq_url, mask_password, parse_duration, sqlalchemy_url


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


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://bob:p@ss:w0rd@127.0.0.1:5432/db", "more than one '@' before the host: percent-encode '@'"),
    ("postgresql://bob:s3cr3t@127.0.0.1:99999/db", "port 99999 is not a port number (1 to 65535)"),
    ("postgresql://bob:s3cr3t@127.0.0.1:0/db", "port 0 is not a port number"),
    ("postgresql://bob:s3cr3t@127.0.0.1:http/db", "cannot parse database URL"),
])
def test_malformed_urls_are_refused_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as refused:
        sqlalchemy_url(url)
    assert "w0rd" not in str(refused.value) and "p@ss" not in str(refused.value) and "s3cr3t" not in str(refused.value)
    assert "bob:***@127.0.0.1" in str(refused.value)


def test_a_password_in_a_query_or_a_key_value_string_is_masked() -> None:
    assert mask_password("postgresql://u@h/d?password=hunter2&sslmode=require") == "postgresql://u@h/d?password=***&sslmode=require"
    assert mask_password("host=h password='a b' dbname=d") == "host=h password=*** dbname=d"
    with pytest.raises(ConfigurationError) as refused:
        sqlalchemy_url("host=h password=hunter2 dbname=x")
    assert "hunter2" not in str(refused.value) and "password=***" in str(refused.value)


def test_a_percent_encoded_password_is_kept_and_masked() -> None:
    url = "postgresql://bob:p%40ss%3Aw0rd@h:5432/db"
    assert sqlalchemy_url(url) == "postgresql+psycopg://bob:p%40ss%3Aw0rd@h:5432/db"
    assert mask_password(url) == "postgresql://bob:***@h:5432/db"
    assert mask_password("postgresql://bob:a/b?c@h/db?sslmode=require") == "postgresql://bob:***@h/db?sslmode=require"


def test_durations() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("5s") == 5
    assert parse_duration("10min") == 600
    assert parse_duration("2h") == 7200
    assert parse_duration("90d") == 90 * 86400
    with pytest.raises(InputError, match=r"bad duration '3': give a unit, e.g. 3s or 3d"):
        parse_duration("3")
    with pytest.raises(InputError, match="bad duration 'soon'"):
        parse_duration("soon")
