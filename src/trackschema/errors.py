"""Errors a user can hit. Each carries a one-line message that says what to do."""

from __future__ import annotations


class TrackschemaError(Exception):
    """A problem the user can fix; the CLI prints the message and exits with `exit_code`."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigurationError(TrackschemaError):
    """Missing or malformed settings (no database URL, a bad URL, a bad timeout)."""


class ConnectionFailed(TrackschemaError):
    """The database server could not be reached or refused the connection."""


class MigrationLockBusy(TrackschemaError):
    """Another session holds the migration advisory lock past `--lock-wait`."""


class LockRetriesExhausted(TrackschemaError):
    """A revision kept timing out on a lock after every retry."""


class ProvisioningError(TrackschemaError):
    """No way to start a PostgreSQL server was found on this machine."""


class RevisionError(TrackschemaError):
    """An unknown revision, a bad range, or another Alembic command error."""


class DataLossRefused(RevisionError):
    """A downgrade would drop tables that still hold rows, and data loss was not allowed."""
