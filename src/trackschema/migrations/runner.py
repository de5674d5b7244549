"""Alembic command wrappers: upgrade, downgrade, offline SQL, current, history, heads, status.

Each function takes `Settings`, runs Alembic through `alembic/env.py` (which takes the
migration advisory lock and sets timeouts) and returns plain data for the CLI to render.
Alembic's own errors become `RevisionError`; connection failures `ConnectionFailed`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Alembic and SQLAlchemy are imported where they are used: a command that
    # never migrates (jobs, queue, partitions, audits, --help) starts in half the time
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import DBAPIError, OperationalError

import psycopg

from trackschema.migrations.annotate import annotate
from trackschema.runtime import db
from trackschema.runtime.db import connection_failure_message
from trackschema.errors import ConfigurationError, ConnectionFailed, DataLossRefused, RevisionError, TrackschemaError
from trackschema.runtime.settings import Settings, project_root


@dataclass(frozen=True)
class RevisionInfo:
    """One revision script as `history`, `heads` and `status` show it."""

    revision: str
    down_revision: str | None
    description: str
    is_head: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class MigrationResult:
    """What an upgrade or downgrade did (or, with `sql`, the SQL it would run)."""

    direction: str
    target: str
    before: list[str]
    after: list[str]
    applied: list[dict[str, str]] = field(default_factory=list)
    sql: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class RevisionStatus:
    """Where the database stands against the revision scripts."""

    database: str
    current: list[str]
    heads: list[str]
    pending: list[RevisionInfo]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and set(self.current) == set(self.heads)

    def to_dict(self) -> dict[str, object]:
        return {
            "database": self.database,
            "current": self.current,
            "heads": self.heads,
            "pending": [p.to_dict() for p in self.pending],
            "up_to_date": self.up_to_date,
        }


def alembic_config(settings: Settings, *, output: io.StringIO | None = None, extra_version_locations: list[str] | None = None) -> Config:
    """An Alembic `Config` for this project; env.py reads `settings` from its attributes.

    `extra_version_locations` adds directories of site-specific revisions that chain
    onto ours (the tests use it for revisions that probe locking behaviour).
    """
    from alembic.config import Config
    root = project_root()
    cfg = Config(str(root / "alembic.ini"), output_buffer=output)
    cfg.set_main_option("script_location", str(root / "alembic"))
    if extra_version_locations:
        cfg.set_main_option("version_locations", os.pathsep.join([str(root / "alembic" / "versions"), *extra_version_locations]))
    cfg.attributes["settings"] = settings
    cfg.attributes["configure_logging"] = False
    return cfg


def script_directory(settings: Settings | None = None) -> ScriptDirectory:
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(alembic_config(settings or Settings()))


@contextmanager
def alembic_errors(settings: Settings) -> Iterator[None]:
    """Turn Alembic and connection errors into one-line `TrackschemaError`s."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
    try:
        yield
    except TrackschemaError:
        raise
    except CommandError as exc:
        raise RevisionError(f"{exc} (see `trackschema history` for the known revisions)") from exc
    except ArgumentError as exc:
        raise ConfigurationError(f"bad database URL {settings.display_url}: {exc}") from exc
    except DBAPIError as exc:
        if isinstance(exc, OperationalError) and (getattr(exc, "connection_invalidated", False) or _is_connect_error(exc)):
            raise ConnectionFailed(connection_failure_message(settings.database_url or "", exc.orig or exc)) from exc
        raise RevisionError(_statement_failure(exc)) from exc


def _statement_failure(exc: DBAPIError) -> str:
    """`a statement failed (SQLSTATE): message; hint` from the server's diagnostics."""
    diag = getattr(exc.orig, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(exc.orig or exc).strip().splitlines()[0]
    hint = getattr(diag, "message_hint", None)
    code = getattr(exc.orig, "sqlstate", None)
    text = f"a migration statement failed ({code}): {primary}"
    return f"{text}; {hint}" if hint else f"{text}; nothing of the failed revision was applied (rerun with --verbose for the SQL)"


def _is_connect_error(exc: OperationalError) -> bool:
    text = str(exc.orig or exc)
    return any(marker in text for marker in ("connection failed", "Connection refused", "could not translate host", "timeout expired", "does not exist", "authentication failed", "No such file"))


def current_heads(settings: Settings) -> list[str]:
    """Revisions recorded in the database's alembic_version table (empty: base). When the
    server cannot be reached (bad host, port, password), psycopg connects once more to say
    why as a `ConnectionFailed` naming the server, never "a migration statement failed"."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool
    engine = create_engine(settings.require_url(), poolclass=NullPool, connect_args={"connect_timeout": 10})
    try:
        connection = engine.connect()
    except DBAPIError:
        db.connect(settings.require_url(), application_name="trackschema-migrate").close()  # raises ConnectionFailed
        raise
    with alembic_errors(settings), connection:
        return sorted(MigrationContext.configure(connection).get_current_heads())


def upgrade(settings: Settings, revision: str = "head", *, sql: bool = False, extra_version_locations: list[str] | None = None) -> MigrationResult:
    """Apply revisions up to `revision` (one transaction each), or return their SQL."""
    check_target("upgrade", revision, sql=sql, extra_version_locations=extra_version_locations)
    return _run("upgrade", settings, revision, sql=sql, extra_version_locations=extra_version_locations)


def downgrade(settings: Settings, revision: str, *, sql: bool = False, extra_version_locations: list[str] | None = None) -> MigrationResult:
    """Revert down to `revision`. With `sql` a bare target becomes `<current>:<target>`."""
    if sql and ":" not in revision:
        if not settings.database_url:
            raise RevisionError(
                f"downgrade --sql needs a range such as head:{revision}, or a database to read the current revision from"
            )
        current = current_heads(settings)
        if not current:
            raise RevisionError("the database is at base: there is nothing to downgrade")
        revision = f"{current[0]}:{revision}"
    check_target("downgrade", revision, sql=sql, extra_version_locations=extra_version_locations)
    if not sql:
        check_downgrade_guards(settings, revision, extra_version_locations=extra_version_locations)
    return _run("downgrade", settings, revision, sql=sql, extra_version_locations=extra_version_locations)


GUARD_BLOCK = re.compile(r"DO \$guard\$.*?\$guard\$;", re.S)


def check_downgrade_guards(settings: Settings, revision: str, *, extra_version_locations: list[str] | None = None) -> None:
    """Before the first step of a downgrade to `revision`: rehearse the whole path offline
    (nothing is sent to the database), then run every guard block on it (`DO $guard$`:
    they only read, and raise when their revision would lose data) in one read-only
    transaction. The revisions run one transaction each, so a guard that fired half-way
    would leave the steps before it done. Rows written between this check and a step
    are still caught by the guard inside the revision.

    A guard the server cannot plan in the database's current state is left to its own
    revision (each runs in a savepoint): on Citus, the guards of the revisions below
    0100 read tables that 0100's downgrade turns back into local ones, and Citus refuses
    them while they are distributed (FeatureNotSupported: "parameterized queries for SQL
    functions referencing distributed tables are not supported"). Such a guard still
    refuses, in its revision, before that revision changes anything; the revisions
    above it have then run (nothing is lost: the database stays one revision above)."""
    from alembic import command
    current = current_heads(settings)
    if not current:
        return
    buffer = io.StringIO()
    offline = alembic_config(settings, output=buffer, extra_version_locations=extra_version_locations)
    with alembic_errors(settings):
        command.downgrade(offline, f"{current[0]}:{revision}", sql=True)
    guards = GUARD_BLOCK.findall(buffer.getvalue())
    if not guards:
        return
    with db.connect(settings.require_url(), autocommit=False, application_name="trackschema-migrate") as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SELECT set_config('trackschema.allow_data_loss', %s, true)", ("on" if settings.allow_data_loss else "off",))
        for guard in guards:
            try:
                with conn.transaction():
                    conn.execute(guard)
            except psycopg.errors.FeatureNotSupported:
                continue  # checked by its own revision (docstring)
            except psycopg.errors.RaiseException as exc:
                hint = exc.diag.message_hint
                raise DataLossRefused(
                    f"refusing to downgrade to {revision}, nothing was changed: {exc.diag.message_primary}"
                    + (f"; {hint}" if hint else "")
                ) from None
        conn.rollback()


def _run(direction: str, settings: Settings, revision: str, *, sql: bool, extra_version_locations: list[str] | None) -> MigrationResult:
    from alembic import command
    from alembic.script import ScriptDirectory
    buffer = io.StringIO()
    cfg = alembic_config(settings, output=buffer, extra_version_locations=extra_version_locations)
    with alembic_errors(settings):
        if sql:
            script = ScriptDirectory.from_config(cfg)
            _check_known(script, revision)
            getattr(command, direction)(cfg, revision, sql=True)
            # squawk-ignore comments, with their reasons, for the justified findings (docs/lint.md)
            return MigrationResult(direction, revision, [], [], sql=annotate(buffer.getvalue()).text)
        settings.require_url()
        before = current_heads(settings)
    try:
        with alembic_errors(settings):
            getattr(command, direction)(cfg, revision)
    except RevisionError as exc:
        raise RevisionError(_stopped_at(settings, before, str(exc))) from exc
    after = current_heads(settings)
    return MigrationResult(direction, revision, before, after, applied=list(cfg.attributes.get("applied", [])))


def _stopped_at(settings: Settings, before: list[str], message: str) -> str:
    """`message`, and where the database is now when the revisions before the failed one
    ran: each revision is its own transaction, so a run of several that fails half-way
    keeps the steps it completed (the failed revision itself changed nothing)."""
    try:
        now = current_heads(settings)
    except TrackschemaError:
        return message
    if now == before:
        return message
    return f"{message} (the revisions before it ran: the database is now at {', '.join(now) or 'base'}, was at {', '.join(before) or 'base'})"


_RELATIVE = re.compile(r"^[+-]\d{1,4}$")


def check_target(direction: str, revision: str, *, sql: bool, extra_version_locations: list[str] | None = None) -> None:
    """Refuse, before anything connects, a target or range the direction cannot take:
    an online run takes one target (a revision, head/base, or +N/-N); `--sql` also takes
    FROM:TO, whose two ends must be known and in the direction's order (an upgrade goes
    from older to newer)."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError
    script = ScriptDirectory.from_config(alembic_config(Settings(), extra_version_locations=extra_version_locations))
    order = {rev.revision: n for n, rev in enumerate(script.walk_revisions())}  # 0 = head
    base = len(order)

    def position(part: str) -> int:
        if part in {"head", "heads"}:
            return 0
        if part == "base":
            return base
        try:
            rev = script.get_revision(part)
        except CommandError as exc:
            raise RevisionError(f"{direction} {revision!r}: {exc} (see `trackschema history` for the known revisions)") from None
        if rev is None:
            raise RevisionError(f"{direction} {revision!r}: unknown revision {part!r} (see `trackschema history`)")
        return order[rev.revision]

    parts = revision.split(":")
    if len(parts) == 1:
        if _RELATIVE.match(revision):
            if sql:
                raise RevisionError(f"{direction} --sql {revision}: relative steps need a database; give a revision or FROM:TO")
            if revision.startswith("-" if direction == "upgrade" else "+"):
                raise RevisionError(f"{direction} {revision}: {'an' if direction == 'upgrade' else 'a'} {direction} takes {'+N' if direction == 'upgrade' else '-N'} steps, or a revision")
            return
        position(revision)
        return
    if not sql:
        raise RevisionError(f"{direction} {revision!r}: a FROM:TO range is for --sql only; give the target revision")
    if len(parts) != 2 or not all(parts):
        raise RevisionError(f"{direction} --sql {revision!r}: write the range as FROM:TO with two revisions (e.g. base:head)")
    start, end = position(parts[0]), position(parts[1])
    if direction == "upgrade" and start < end:
        raise RevisionError(f"upgrade --sql {revision!r} runs backwards: an upgrade goes from older to newer, e.g. {parts[1]}:{parts[0]}")
    if direction == "downgrade" and start > end:
        raise RevisionError(f"downgrade --sql {revision!r} runs forwards: a downgrade goes from newer to older, e.g. {parts[1]}:{parts[0]}")


def _check_known(script: ScriptDirectory, revision: str) -> None:
    for part in revision.split(":"):
        if part and part not in {"head", "heads", "base"} and not part.startswith(("+", "-")):
            script.get_revision(part)  # raises CommandError for an unknown revision


def history(settings: Settings | None = None) -> list[RevisionInfo]:
    """Every revision, newest first."""
    script = script_directory(settings)
    heads = set(script.get_heads())
    return [_info(rev, heads) for rev in script.walk_revisions()]


def heads(settings: Settings | None = None) -> list[RevisionInfo]:
    script = script_directory(settings)
    head_ids = set(script.get_heads())
    return [_info(script.get_revision(h), head_ids) for h in sorted(head_ids)]


def _info(rev: object, heads: set[str]) -> RevisionInfo:
    down = rev.down_revision  # type: ignore[attr-defined]
    down_text = ",".join(down) if isinstance(down, tuple) else down
    return RevisionInfo(rev.revision, down_text, (rev.doc or "").strip(), rev.revision in heads)  # type: ignore[attr-defined]


def revision_status(settings: Settings) -> RevisionStatus:
    """The database's revision, the heads, and the revisions not yet applied (oldest first)."""
    script = script_directory(settings)
    current = current_heads(settings)
    head_ids = sorted(script.get_heads())
    with alembic_errors(settings):
        applied: set[str] = set()
        for rev in script.revision_map.iterate_revisions(tuple(current), "base") if current else ():
            applied.add(rev.revision)
        all_heads = set(head_ids)
        pending = [_info(rev, all_heads) for rev in script.walk_revisions() if rev.revision not in applied]
    pending.reverse()
    return RevisionStatus(settings.display_url, current, head_ids, pending)
