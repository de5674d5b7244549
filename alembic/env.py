"""The one place where trackschema migrations connect, lock and set timeouts.

Online runs:
- take a session-level advisory lock (`trackschema.db.MIGRATION_LOCK_KEY`) so only one
  upgrade or downgrade runs against a database at a time; a second run waits up to
  `lock_wait` and then fails naming the session that holds it;
- set `lock_timeout` (a DDL statement gives up quickly instead of queueing application
  traffic behind its lock request) and `statement_timeout` for the session; a revision
  may tighten or relax them with `trackschema.migration_ops.local_timeouts()`;
- run each revision in its own transaction; after a lock timeout or deadlock the failed
  revision (only that one: earlier ones are committed) is retried with backoff.

A connection (or Engine) handed in through `config.attributes["connection"]`, as
pytest-alembic does, is used as it is. Settings come from `config.attributes["settings"]`
(the trackschema CLI), else from `-x database_url=...`, else the environment.
"""

from __future__ import annotations

import logging
import time
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from trackschema.runtime import db
from trackschema.errors import LockRetriesExhausted, MigrationLockBusy
from trackschema.runtime.settings import Settings

config = context.config
log = logging.getLogger("trackschema.migrate")

if config.config_file_name and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    if settings is not None:
        return settings
    x_args = context.get_x_argument(as_dictionary=True)
    return Settings.from_env(
        database_url=x_args.get("database_url") or config.get_main_option("sqlalchemy.url") or None,
        allow_data_loss=x_args.get("allow_data_loss", "").lower() in {"1", "true", "on", "yes"} or None,
    )


def _record_step(ctx, step, heads, run_args) -> None:  # noqa: ANN001 - Alembic callback signature
    """Collect each applied step into `config.attributes["applied"]` for the caller to report."""
    revision = step.up_revision
    config.attributes.setdefault("applied", []).append(
        {
            "direction": "upgrade" if step.is_upgrade else "downgrade",
            "from": ",".join(step.source_revision_ids) or "base",
            "to": ",".join(step.destination_revision_ids) or "base",
            "revision": step.up_revision_id,
            "description": revision.doc if revision is not None else "",
        }
    )


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=None,
        transaction_per_migration=True,
        on_version_apply=_record_step,
        **kwargs,
    )


def run_migrations_offline(settings: Settings) -> None:
    """Emit SQL: the session settings first, then one BEGIN/COMMIT per revision."""
    url = settings.require_url() if settings.database_url else "postgresql+psycopg://"
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        for statement in db.timeout_statements(lock_timeout=settings.lock_timeout, statement_timeout=settings.statement_timeout):
            context.execute(statement)
        if settings.allow_data_loss:
            context.execute("SET trackschema.allow_data_loss = 'on'")
        context.run_migrations()


def _set_session(connection: Connection, name: str, value: str) -> None:
    connection.execute(text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value})


def acquire_migration_lock(connection: Connection, settings: Settings) -> None:
    """Wait up to `lock_wait` for the migration advisory lock, or raise naming its holder."""
    db.set_timeouts(connection.connection.cursor(), lock_timeout=settings.lock_wait)
    try:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": db.MIGRATION_LOCK_KEY})
    except DBAPIError as exc:
        if db.sqlstate(exc) != "55P03":
            raise
        connection.rollback()
        holders = db.advisory_lock_holders(connection.connection.cursor())
        who = "; ".join(h.describe() for h in holders) or "a session that has since gone"
        raise MigrationLockBusy(
            f"another migration holds the lock on this database ({who}); waited {settings.lock_wait:g}s: "
            "wait for it to finish, or raise --lock-wait"
        ) from None


def release_migration_lock(connection: Connection) -> None:
    try:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": db.MIGRATION_LOCK_KEY})
        connection.commit()
    except DBAPIError:  # the connection is gone; so is its lock
        log.debug("could not release the migration lock explicitly", exc_info=True)


def run_locked(connection: Connection, settings: Settings) -> None:
    """Lock, set timeouts, run every pending revision (retrying lock timeouts), unlock."""
    external_transaction = connection.in_transaction()
    acquire_migration_lock(connection, settings)
    db.set_timeouts(connection.connection.cursor(), lock_timeout=settings.lock_timeout, statement_timeout=settings.statement_timeout)
    _set_session(connection, "trackschema.allow_data_loss", "on" if settings.allow_data_loss else "off")
    if not external_transaction:
        connection.commit()
    try:
        for attempt in range(settings.lock_retries + 1):
            _configure(connection=connection)
            try:
                with context.begin_transaction():
                    context.run_migrations()
                return
            except DBAPIError as exc:
                if connection.in_transaction() and not external_transaction:
                    connection.rollback()
                if db.sqlstate(exc) not in db.RETRYABLE_SQLSTATES or external_transaction:
                    raise
                blockers = db.oldest_transactions(connection.connection.cursor())
                at = ",".join(context.get_context().get_current_heads()) or "base"
                # End the transaction those reads began: a connection left "in transaction"
                # would make the next attempt look like an external transaction to Alembic,
                # which would then never commit it.
                connection.rollback()
                who = "; ".join(b.describe() for b in blockers) or "no other open transaction now"
                if attempt >= settings.lock_retries:
                    raise LockRetriesExhausted(
                        f"gave up after {attempt + 1} attempts: the revision after {at} could not get its locks "
                        f"within lock_timeout {settings.lock_timeout:g}s (oldest open transactions: {who}); "
                        "end or wait out that transaction and run upgrade again"
                    ) from None
                delay = db.backoff_delay(attempt, settings.retry_backoff)
                log.warning(
                    "lock timeout (%gs) in the revision after %s, attempt %d of %d; retrying in %.1fs; oldest open transactions: %s",
                    settings.lock_timeout, at, attempt + 1, settings.lock_retries + 1, delay, who,
                )
                time.sleep(delay)
    finally:
        if not external_transaction:
            release_migration_lock(connection)


def run_migrations_online(settings: Settings) -> None:
    handed_in = config.attributes.get("connection")
    if isinstance(handed_in, Connection):
        run_locked(handed_in, settings)
        return
    engine = handed_in if isinstance(handed_in, Engine) else create_engine(
        settings.require_url(), poolclass=NullPool,
        connect_args={"application_name": "trackschema-migrate", "connect_timeout": 10},
    )
    with engine.connect() as connection:
        run_locked(connection, settings)


_current = _settings()
if context.is_offline_mode():
    run_migrations_offline(_current)
else:
    run_migrations_online(_current)
