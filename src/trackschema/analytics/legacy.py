"""The legacy `analytics_events` JSONB rows: moved into the normalized tables, and back.

`move_legacy` calls `analytics_move_legacy_events(batch_size)` until the legacy table is
empty: each call is one atomic statement that deletes a batch from analytics_events and
inserts it into the normalized tables and `analytics_events_archive` (rows that cannot be
mapped are archived with a reason). `restore_legacy` is the rollback: archived rows go back
into analytics_events and the rows made of them leave the normalized tables. See
`sql/functions/analytics_move_legacy_events.v1.sql` for the mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import psycopg

from trackschema.operations.inputs import Count, Flag, InputError
from trackschema.operations.options import Options, option
from trackschema.runtime.db import connect
from trackschema.runtime.settings import Settings

DEFAULT_BATCH_SIZE = 5_000
RESTORE_BATCH = Count(1, 1_000_000)


@dataclass(frozen=True)
class RestoreOptions(Options):
    """`analytics legacy-restore`: it moves every archived legacy row back and deletes what
    was made of them, so it runs only when confirmed."""

    operation = "analytics legacy-restore"
    batch_size: int = option(RESTORE_BATCH, DEFAULT_BATCH_SIZE, "Archived rows put back per transaction.")
    yes: bool = option(Flag(), False, "Really move the archived legacy rows back.")

    def check(self, label: Callable[[str], str]) -> None:
        if not self.yes:
            raise InputError("legacy-restore puts every archived legacy row back into analytics_events and deletes the "
                             f"page views and clicks made of them: rerun with {label('yes')} to do it")


@dataclass
class LegacyMove:
    moved: int = 0
    page_views: int = 0
    clicks: int = 0
    sessions_created: int = 0
    rejected: int = 0
    batches: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class LegacyRestore:
    restored: int = 0
    page_views_removed: int = 0
    clicks_removed: int = 0
    sessions_removed: int = 0
    batches: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def move_legacy(conn: psycopg.Connection, batch_size: int = DEFAULT_BATCH_SIZE, max_batches: int | None = None) -> LegacyMove:
    """Move legacy rows batch by batch (autocommit `conn`: each batch commits) until none is left."""
    total = LegacyMove()
    while max_batches is None or total.batches < max_batches:
        row = conn.execute("SELECT * FROM analytics_move_legacy_events(%s)", (batch_size,)).fetchone()
        assert row is not None
        if row[0] == 0:
            break
        total.batches += 1
        total.moved += row[0]
        total.page_views += row[1]
        total.clicks += row[2]
        total.sessions_created += row[3]
        total.rejected += row[4]
    return total


def restore_legacy(conn: psycopg.Connection, batch_size: int = DEFAULT_BATCH_SIZE, max_batches: int | None = None) -> LegacyRestore:
    """Put archived legacy rows back into analytics_events batch by batch until the archive is empty."""
    total = LegacyRestore()
    while max_batches is None or total.batches < max_batches:
        row = conn.execute("SELECT * FROM analytics_restore_legacy_events(%s)", (batch_size,)).fetchone()
        assert row is not None
        if row[0] == 0:
            break
        total.batches += 1
        total.restored += row[0]
        total.page_views_removed += row[1]
        total.clicks_removed += row[2]
        total.sessions_removed += row[3]
    return total


def restore_all(settings: Settings, batch_size: int = DEFAULT_BATCH_SIZE) -> LegacyRestore:
    """`restore_legacy` on its own connection (`trackschema analytics legacy-restore`)."""
    batch_size = RESTORE_BATCH.parse("--batch-size", batch_size)
    with connect(settings.require_url(), application_name="trackschema-legacy-restore") as conn:
        return restore_legacy(conn, batch_size)
