"""Atomic archiving of old rows for tracking tables that stay unpartitioned; the
`archive-tracking` job.

Rows older than a cutoff move from `<table>` to `<table>_archive` (revision 0031) in
batches, each batch ONE statement:

    WITH moved AS (DELETE FROM t WHERE <ctid range> AND key < cutoff RETURNING cols)
    INSERT INTO t_archive (cols) SELECT cols FROM moved

so a row is deleted exactly when it is archived, in the same transaction. The seeds'
INSERT ... SELECT followed by a separate DELETE loses rows: a row dated before the cutoff
that commits between the two statements is deleted without having been copied. Here a
row arriving while the job runs is either moved in this batch or left for a later run;
never lost, never copied twice.

Batches walk the heap by block ranges (ctid >= '(b,0)' AND ctid < '(b+n,0)', a TID range
scan), so each batch reads a bounded slice instead of rescanning the dead rows left at
the front by earlier batches. Blocks appended while the job runs are walked too; a row
written behind the cursor waits for the next run.

Partitioned tables are skipped: retire their old partitions instead (`trackschema
partitions retire`), which moves whole partitions without touching rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from trackschema.runtime.db import set_timeouts
from trackschema.errors import TrackschemaError
from trackschema.jobs.registry import job
from trackschema.operations.inputs import Count, Duration, Names
from trackschema.operations.options import Options, option

# Tracking tables archived by row moves, with the column that dates a row. Their
# archive tables (<table>_archive) are created by revision 0031.
ARCHIVED_TABLES = {
    "activity_log": "occurred_at",
    "entity_events": "occurred_at",
    "goal_events": "occurred_at",
}
DEFAULT_RETENTION = "90d"
DEFAULT_BATCH_BLOCKS = 1000


class ArchiveError(TrackschemaError):
    """The archive table cannot take the rows (missing, or lacking columns)."""


@dataclass(frozen=True)
class ArchiveResult:
    table: str
    archive_table: str
    cutoff: datetime | None
    moved: int
    batches: int
    seconds: float
    skipped: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"table": self.table, "archive_table": self.archive_table, "cutoff": self.cutoff.isoformat() if self.cutoff else None,
                "moved": self.moved, "batches": self.batches, "seconds": round(self.seconds, 3), "skipped": self.skipped}


def _columns(conn: psycopg.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
        (table,),
    ).fetchall()
    return dict(rows)


def archive_rows(
    conn: psycopg.Connection,
    table: str,
    key: str,
    cutoff: datetime,
    *,
    batch_blocks: int = DEFAULT_BATCH_BLOCKS,
    pause: float = 0.0,
    archive_table: str | None = None,
) -> ArchiveResult:
    """Move every row of `table` with `key` < `cutoff` into `archive_table` (default
    `<table>_archive`), one autocommit statement per slice of `batch_blocks` heap blocks,
    sleeping `pause` seconds between batches. `conn` must be in autocommit mode so each
    batch commits on its own (a failure keeps the batches already committed: they are
    consistent, each row being either here or there)."""
    archive_table = archive_table or f"{table}_archive"
    started = time.monotonic()
    kind = conn.execute("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%s)", (table,)).fetchone()
    if kind is None:
        raise ArchiveError(f"table {table} does not exist")
    if kind[0] == "p":
        return ArchiveResult(table, archive_table, cutoff, 0, 0, time.monotonic() - started,
                             skipped="partitioned: retire old partitions with `trackschema partitions retire` instead")
    if conn.execute("SELECT to_regclass(%s)", (archive_table,)).fetchone() == (None,):
        raise ArchiveError(f"archive table {archive_table} does not exist: run `trackschema upgrade head`")
    main_cols, archive_cols = _columns(conn, table), _columns(conn, archive_table)
    missing = [c for c in main_cols if c not in archive_cols]
    if missing:
        fix = "; ".join(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(sql.Identifier(archive_table), sql.Identifier(c), sql.SQL(main_cols[c])).as_string(conn)
            for c in missing
        )
        raise ArchiveError(f"{archive_table} lacks columns {', '.join(missing)} of {table}: add them ({fix}), then rerun")
    if key not in main_cols:
        raise ArchiveError(f"{table} has no column {key}")
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in main_cols)
    statement = sql.SQL(
        """WITH moved AS (
               DELETE FROM {table}
                WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
                  AND {key} < %(cutoff)s
            RETURNING {cols})
           INSERT INTO {archive} ({cols}) SELECT {cols} FROM moved"""
    ).format(table=sql.Identifier(table), key=sql.Identifier(key), cols=cols, archive=sql.Identifier(archive_table))
    moved = batches = 0
    block = 0
    while True:
        size = conn.execute("SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint", (table,)).fetchone()
        blocks = size[0] if size else 0
        if block >= blocks:
            break
        while block < blocks:
            cur = conn.execute(statement, {"lo": f"({block},0)", "hi": f"({block + batch_blocks},0)", "cutoff": cutoff})
            moved += cur.rowcount
            batches += 1
            block += batch_blocks
            if pause:
                time.sleep(pause)
    return ArchiveResult(table, archive_table, cutoff, moved, batches, time.monotonic() - started)


@dataclass(frozen=True)
class ArchiveOptions(Options):
    operation = "archive-tracking"
    older_than: float = option(Duration(minimum=3600, maximum=100 * 366 * 86400), 90 * 86400.0,
                               "Archive rows older than this (default 90d).")
    tables: tuple[str, ...] = option(Names(tuple(ARCHIVED_TABLES)), tuple(ARCHIVED_TABLES), "Tables to archive, comma-separated.")
    batch_blocks: int = option(Count(1, 1_000_000), DEFAULT_BATCH_BLOCKS, "Heap blocks per batch transaction.")
    pause: float = option(Duration(maximum=3600, zero_allowed=True), 0.0, "Pause between batches.")
    lock_timeout: float = option(Duration(minimum=0.01, maximum=3600), 5.0, "How long a batch may wait for a lock.")


@job("archive-tracking", schedule="30 2 * * 0",
     description="move tracking rows older than older_than (default 90d) to <table>_archive, atomically; tables=a,b to choose",
     options=ArchiveOptions)
def archive_tracking(conn: psycopg.Connection, options: "ArchiveOptions") -> dict[str, Any]:
    """Weekly (docs/design.md#archiving). Partitioned tables are skipped (retire them)."""
    set_timeouts(conn.cursor(), lock_timeout=options.lock_timeout)
    row = conn.execute("SELECT now() - make_interval(secs => %s)", (options.older_than,)).fetchone()
    assert row is not None
    cutoff = row[0]
    results = [archive_rows(conn, t, ARCHIVED_TABLES[t], cutoff, batch_blocks=options.batch_blocks, pause=options.pause)
               for t in options.tables]
    return {"cutoff": cutoff.isoformat(), "tables": [r.to_dict() for r in results]}
