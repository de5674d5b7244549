"""Settings: database URL resolution, migration timeouts and where the project files live.

Resolution order for the database URL is `--database-url`, then
`TRACKSCHEMA_DATABASE_URL`, then `DATABASE_URL`. URLs may be written as `postgres://`,
`postgresql://` or `postgresql+psycopg://`; they are normalised for SQLAlchemy (psycopg 3
driver) and for libpq. Passwords are masked wherever a URL is shown.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import quote


from trackschema.errors import ConfigurationError
from trackschema.operations.inputs import Count, Duration, Flag, InputError
from trackschema.operations.options import Options, option

URL_ENV_VARS = ("TRACKSCHEMA_DATABASE_URL", "DATABASE_URL")

# The migration settings' inputs, for the CLI options and the environment variables alike.
# A lock_timeout of 0 would turn PostgreSQL's timeout off: the smallest is 10ms.
LOCK_WAIT = Duration(minimum=0.01, maximum=3600)  # 0 would be lock_timeout 0: wait forever
LOCK_TIMEOUT = Duration(minimum=0.01, maximum=3600)
STATEMENT_TIMEOUT = Duration(minimum=0.1, maximum=7 * 86400)
LOCK_RETRIES = Count(0, 100)


@dataclass(frozen=True)
class MigrationOptions(Options):
    """How `upgrade` and `downgrade` wait and retry, declared once for the CLI options, the
    `TRACKSCHEMA_*` environment variables (read by `alembic` too, through env.py) and the
    jobs that retry lock timeouts the same way (partition maintenance)."""

    operation = "upgrade/downgrade"
    lock_wait: float = option(LOCK_WAIT, 30.0, "How long to wait for another migration to finish.", env="TRACKSCHEMA_LOCK_WAIT")
    lock_timeout: float = option(LOCK_TIMEOUT, 5.0, "How long one statement may wait for a table lock before the revision is retried.",
                                 env="TRACKSCHEMA_LOCK_TIMEOUT")
    statement_timeout: float = option(STATEMENT_TIMEOUT, 600.0, "Longest a single statement may run.", env="TRACKSCHEMA_STATEMENT_TIMEOUT")
    lock_retries: int = option(LOCK_RETRIES, 5, "Retries of a revision after a lock timeout.", env="TRACKSCHEMA_LOCK_RETRIES")


@dataclass(frozen=True)
class DowngradeOptions(MigrationOptions):
    """`downgrade` also takes `--allow-data-loss`."""

    operation = "downgrade"
    allow_data_loss: bool = option(Flag(), False, "Let revisions drop tables that still hold rows.")


MIGRATION_OPTION_NAMES = {"lock_retries": "--retries"}  # the CLI's name for a field, where it differs

_ANY_DURATION = Duration(minimum=0.001, maximum=100 * 366 * 86400, zero_allowed=True)


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in a duration such as `500ms`, `5s`, `10min` (or `10m`), `2h`, `90d`. The unit
    is required: a bare `90` is refused (seconds or days?)."""
    return _ANY_DURATION.parse(what, text)


def pg_interval(seconds: float) -> str:
    """A PostgreSQL GUC value in milliseconds for a duration in seconds (`'5000ms'`)."""
    return f"{int(round(seconds * 1000))}ms"


def sqlalchemy_url(url: str) -> str:
    """The URL with the psycopg 3 driver, as SQLAlchemy wants it. Refused, with the
    password masked: an `@` in the user info that is not percent-encoded, a port that is
    not a number from 1 to 65535, anything but PostgreSQL."""
    shown = mask_password(url)
    rest = url.split("://", 1)[1] if "://" in url else ""
    if rest.count("@", 0, _authority_end(rest)) > 1:
        raise ConfigurationError(
            f"database URL {shown!r} has more than one '@' before the host: percent-encode '@' in the "
            "user name or password as %40 (and '/' as %2F, ':' in the user name as %3A)"
        )
    port = _port(rest)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if port is _UNPARSABLE or not re.fullmatch(r"[A-Za-z][\w+.-]*", scheme):
        raise ConfigurationError(
            f"cannot parse database URL {shown!r}: write it as postgresql://user:password@host:port/dbname "
            "(percent-encode special characters of the password)"
        )
    if port is not None and not 1 <= int(port) <= 65535:
        raise ConfigurationError(f"database URL {shown!r}: port {port} is not a port number (1 to 65535)")
    if scheme.split("+", 1)[0].lower() not in {"postgresql", "postgres"}:
        raise ConfigurationError(
            f"database URL {mask_password(url)!r} is not PostgreSQL: trackschema only runs against postgresql://"
        )
    # the rest as written: re-rendering would turn %20 in ?options=-c%20TimeZone%3DUTC into +
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@dataclass(frozen=True)
class ServerUrl:
    """An input kind: a PostgreSQL URL (e.g. a server where a command may create its own
    databases, sent CREATE DATABASE from the database it names), checked by `sqlalchemy_url`;
    refused, with the password masked, when it is not one."""

    def parse(self, option: str, value: object) -> str:
        text = str(value).strip()
        try:
            sqlalchemy_url(text)
        except ConfigurationError as exc:
            raise InputError(f"bad {option}: {exc}") from None
        return text


def libpq_url(url: str) -> str:
    """The URL without a SQLAlchemy driver suffix, as libpq/psycopg and psql want it. The
    rest is kept as written: re-rendering would turn `%20` in `?options=-c%20TimeZone%3DUTC`
    into `+`, which libpq does not read as a space."""
    return "postgresql://" + sqlalchemy_url(url).split("://", 1)[1]


_UNPARSABLE = object()


def _port(rest: str) -> object:
    """The port of `rest` (a URL after `://`) as its digits, None when there is none, or
    `_UNPARSABLE` (not digits: a typo, or libpq's several hosts, which this toolkit does
    not take). Parsed here rather than by SQLAlchemy so that commands that never migrate
    do not import it (a CLI start costs half as much)."""
    authority = rest[:_authority_end(rest)]
    host_port = authority[authority.rfind("@") + 1:]
    if host_port.startswith("["):  # [IPv6]:port
        close = host_port.find("]")
        tail = host_port[close + 1:] if close >= 0 else "?"
        if tail and not tail.startswith(":"):
            return _UNPARSABLE
        text = tail[1:]
    else:
        text = host_port.partition(":")[2]
    if not text:
        return None
    return text if text.isdigit() else _UNPARSABLE


_PASSWORD_PARAM = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^\s&]*)", re.I)


def _authority_end(rest: str) -> int:
    """Where the authority (user info and host) of `rest` (a URL after `://`) ends: at the
    first `/` or `?` after its last `@`, so an unencoded `/` or `?` in a password stays
    inside it."""
    at = rest.rfind("@")
    ends = [i for i in (rest.find("/", at + 1), rest.find("?", at + 1)) if i >= 0]
    return min(ends) if ends else len(rest)


def mask_password(url: str) -> str:
    """The URL with its password replaced by `***`. The password is everything between the
    first `:` of the user info and the last `@` before the host, so a password holding an
    unencoded `@` or `:` is masked whole, never in part. A `password=` in a query string or
    in a `key=value` connection string is masked too."""
    url = _PASSWORD_PARAM.sub(r"\1***", url)
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    authority = rest[:_authority_end(rest)]
    at = authority.rfind("@")
    if at < 0 or ":" not in authority[:at]:
        return url
    user = authority[: authority.index(":")]
    return f"{scheme}://{user}:***{rest[at:]}"


def with_database(url: str, dbname: str) -> str:
    """The same server URL (SQLAlchemy form) pointing at database `dbname`, percent-encoded
    (a space or a quote in a name is valid in PostgreSQL, never raw in a URL); the user
    info and the query are kept as written."""
    scheme, rest = sqlalchemy_url(url).split("://", 1)
    end = _authority_end(rest)
    authority, tail = rest[:end], rest[end:]
    query = tail.split("?", 1)[1] if "?" in tail else None
    return f"{scheme}://{authority}/{quote(dbname, safe='')}" + (f"?{query}" if query is not None else "")


def project_root() -> Path:
    """Directory holding `alembic.ini`, `alembic/` and `sql/`.

    `TRACKSCHEMA_PROJECT_ROOT` wins; then the copy packed into an installed wheel
    (`trackschema/_project`); then the source checkout this module lives in.
    """
    override = os.environ.get("TRACKSCHEMA_PROJECT_ROOT")
    if override:
        return Path(override)
    packed = Path(str(resources.files("trackschema"))) / "_project"
    if (packed / "alembic.ini").is_file():
        return packed
    checkout = Path(__file__).resolve().parents[3]  # src/trackschema/runtime/settings.py
    if (checkout / "alembic.ini").is_file():
        return checkout
    raise ConfigurationError(
        "cannot find alembic.ini: set TRACKSCHEMA_PROJECT_ROOT to the trackschema checkout"
    )


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to reach the database and run migrations safely.

    `lock_wait` bounds how long a second upgrade waits for the migration advisory lock;
    `lock_timeout` bounds how long one DDL statement may queue for a table lock (and so
    how long application traffic can queue behind it); after a lock timeout the revision
    is retried `lock_retries` times with exponential backoff from `retry_backoff`.
    """

    database_url: str | None = None
    lock_wait: float = MigrationOptions.lock_wait
    lock_timeout: float = MigrationOptions.lock_timeout
    statement_timeout: float = MigrationOptions.statement_timeout
    lock_retries: int = MigrationOptions.lock_retries
    retry_backoff: float = 1.0
    allow_data_loss: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, database_url: str | None = None, migration: MigrationOptions | None = None, **overrides: object) -> "Settings":
        """Settings from `migration` (parsed options), else the `TRACKSCHEMA_*` variables, else
        the declared defaults; `overrides` set single fields (as from code). The URL is
        `database_url`, else `TRACKSCHEMA_DATABASE_URL`, else `DATABASE_URL`."""
        url = database_url or next((os.environ[v] for v in URL_ENV_VARS if os.environ.get(v)), None)
        options = migration if migration is not None else MigrationOptions.from_params({})
        values: dict[str, object] = {"database_url": url, **options.values()}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def require_url(self) -> str:
        """The SQLAlchemy URL, or a one-line error saying how to provide one."""
        if not self.database_url:
            raise ConfigurationError(
                "no database URL: pass --database-url or set TRACKSCHEMA_DATABASE_URL "
                "(for a throwaway server: export TRACKSCHEMA_DATABASE_URL=$(trackschema sandbox start --print-url))"
            )
        return sqlalchemy_url(self.database_url)

    @property
    def display_url(self) -> str:
        return mask_password(self.database_url) if self.database_url else "(none)"


# --- issue 5: which tables are range-partitioned by month ---------------------------------

PARTITIONED_TABLES_ENV = "TRACKSCHEMA_PARTITIONED_TABLES"
# The partition key of each table that may be partitioned by month (docs/design.md#partitioning).
PARTITION_KEYS = {
    "activity_log": "occurred_at",
    "analytics_events": "created_at",
    "calendar_events": "start_at",
    "context_events": "start_at",
}
# activity_log and analytics_events by default; calendar_events and context_events are
# optional: both are referenced by foreign keys, which a partitioned table only allows
# through a key that includes the partition key, so the conversion refuses them until
# those keys change.
DEFAULT_PARTITIONED_TABLES = "activity_log,analytics_events"
DEFAULT_MONTHS_AHEAD = 3


@dataclass(frozen=True)
class PartitionDeclaration:
    """A table to keep as monthly range partitions on `key`.

    `default_partition` adds a DEFAULT partition that catches rows outside every range
    (reported by `status` and the partition audit, drained by `partitions ensure`). Off by
    default: without it such a row is refused with PostgreSQL's "no partition of relation
    ... found for row", and retirement can use DETACH PARTITION ... CONCURRENTLY, which
    PostgreSQL does not allow while a default partition exists.
    """

    table: str
    key: str
    default_partition: bool = False
    months_ahead: int = DEFAULT_MONTHS_AHEAD


def partition_declarations(spec: str | None = None) -> tuple[PartitionDeclaration, ...]:
    """The declared partitioned tables.

    `spec` (else `TRACKSCHEMA_PARTITIONED_TABLES`, else activity_log and analytics_events)
    is a comma-separated list of `table[:key][+default]`; the key may be left out for the
    tables in `PARTITION_KEYS`; `none` (or an empty value) declares no table.
    """
    text = spec if spec is not None else os.environ.get(PARTITIONED_TABLES_ENV, DEFAULT_PARTITIONED_TABLES)
    if text.strip().lower() in {"", "none"}:
        return ()
    declared: list[PartitionDeclaration] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        body, _, option = item.partition("+")
        table, _, key = body.partition(":")
        table, key = table.strip(), key.strip() or PARTITION_KEYS.get(table.strip(), "")
        if option.strip() not in {"", "default"} or not re.fullmatch(r"[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*)?", table) or not re.fullmatch(r"[A-Za-z_][\w$]*", key or "-"):
            raise ConfigurationError(
                f"bad partition declaration {item!r} in {PARTITIONED_TABLES_ENV}: write table[:key][+default], "
                f"e.g. activity_log:occurred_at,calendar_events:start_at+default"
            )
        declared.append(PartitionDeclaration(table, key, default_partition=option.strip() == "default"))
    return tuple(declared)
