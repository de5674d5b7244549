"""Monthly range partitions: list them, make months ahead, retire old ones; the
`partition-maintenance` job and the partition section of `status`.

The tables are converted by revision 0030 (see its docstring and
`sql/functions/partition_convert_*.v1.sql`); which ones is recorded in
`trackschema.partitioned_tables`, and everything here works from that record.

Policy for rows outside every partition (chosen per table in the declaration, see
`settings.PartitionDeclaration`): by default there is no DEFAULT partition, so such a row
is refused by PostgreSQL ("no partition of relation ... found for row") and `ensure`
keeps `months_ahead` months ready; with `+default` a DEFAULT partition catches them,
`status` and the partition audit report its rows, and `ensure` moves them into the
monthly partitions they belong to.

Locks: `ensure` adds each partition with LIKE + ATTACH (SHARE UPDATE EXCLUSIVE on the
parent: reads and writes go on). `retire` detaches with DETACH PARTITION ... CONCURRENTLY
(two transactions, SHARE UPDATE EXCLUSIVE; it waits for queries that use the partition to
end), outside any transaction block; with a default partition PostgreSQL forbids
CONCURRENTLY, so the plain DETACH is used, which holds ACCESS EXCLUSIVE on the parent for
a moment (waits bounded by lock_timeout). A detach interrupted half-way is finished with
DETACH ... FINALIZE on the next run.

On Citus (the parent a distributed table, docs/citus.md#partitions) Citus 13.2 refuses
DETACH ... CONCURRENTLY ("DETACH PARTITION .. CONCURRENTLY commands are currently
unsupported"), so `retire` detaches plainly there: ACCESS EXCLUSIVE on the parent and the
partition on the coordinator AND on every shard of both on the workers, in one distributed
transaction. Every read and write of the table waits for the detach (tens of milliseconds
when nothing holds the table; as long as the longest transaction using it otherwise), up
to lock_timeout, which is sent to the workers too (`SET LOCAL` with
`citus.propagate_set_commands = 'local'`: otherwise a lock held by a transaction on a
worker's shard is waited for without limit); a timeout anywhere rolls back every node and
is retried with backoff, like every short lock here. Retire on Citus in a quiet window.
The detached partition stays a distributed table co-located with its parent; archiving
moves it (and its shards) to the archive schema, dropping drops every shard. The same
propagated lock_timeout bounds those two statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from trackschema.partitions.consumers import partition_needs
from trackschema.runtime.citus import is_distributed
from trackschema.runtime.db import connect, quote_ident, retry_on_lock_timeout, set_timeouts, sqlstate
from trackschema.errors import TrackschemaError
from trackschema.jobs.registry import job
from trackschema.operations.inputs import Choice, Count, Duration, Flag, InputError, Instant, Name
from trackschema.operations.options import Options, option
from trackschema.runtime.settings import Settings

# The inputs `partitions ensure/retire` and the partition-maintenance job share.
MONTHS_AHEAD = Count(0, 120)
RETIRE_AGE = Duration(minimum=86400, maximum=100 * 366 * 86400)  # from 1d: a partition spans a month

DEFAULT_ARCHIVE_SCHEMA = "archive"


class PartitionError(TrackschemaError):
    """A partition command cannot do what was asked (unknown table, name clash...)."""


@dataclass(frozen=True)
class PartitionedTable:
    """A row of trackschema.partitioned_tables."""

    parent: str
    key: str
    months_ahead: int
    default_partition: bool
    history_partition: str | None
    state: str


@dataclass(frozen=True)
class PartitionInfo:
    """One partition: bounds as UTC instants (None = unbounded), size, and its rows
    (exact, or the planner's estimate when `rows_estimated`)."""

    parent: str
    partition: str
    lower: datetime | None
    upper: datetime | None
    rows: int
    bytes: int
    is_default: bool = False
    detach_pending: bool = False
    rows_estimated: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "parent": self.parent,
            "partition": self.partition,
            "from": self.lower.isoformat() if self.lower else None,
            "to": self.upper.isoformat() if self.upper else None,
            "rows": self.rows,
            "bytes": self.bytes,
            "default": self.is_default,
            "detach_pending": self.detach_pending,
            "rows_estimated": self.rows_estimated,
        }


@dataclass(frozen=True)
class CreatedPartition:
    parent: str
    partition: str
    lower: datetime
    upper: datetime
    rows_moved: int

    def to_dict(self) -> dict[str, object]:
        return {"parent": self.parent, "partition": self.partition, "from": self.lower.isoformat(),
                "to": self.upper.isoformat(), "rows_moved": self.rows_moved}


@dataclass(frozen=True)
class RetiredPartition:
    """A partition retired (or, in a dry run, that would be): where it went."""

    parent: str
    partition: str
    lower: datetime | None
    upper: datetime
    rows: int
    bytes: int
    action: str  # "archive" | "drop"
    destination: str | None  # archive.<name> when archived
    done: bool

    def to_dict(self) -> dict[str, object]:
        return {"parent": self.parent, "partition": self.partition, "from": self.lower.isoformat() if self.lower else None,
                "to": self.upper.isoformat(), "rows": self.rows, "bytes": self.bytes, "action": self.action,
                "destination": self.destination, "done": self.done}


@dataclass(frozen=True)
class RetireResult:
    cutoff: datetime
    dry_run: bool
    partitions: list[RetiredPartition] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"cutoff": self.cutoff.isoformat(), "dry_run": self.dry_run, "partitions": [p.to_dict() for p in self.partitions]}


@dataclass(frozen=True)
class PartitionHealth:
    """The status-page line of one partitioned table."""

    parent: str
    key: str
    state: str
    partitions: int
    months_ahead: int
    months_ahead_wanted: int
    newest_bound: datetime | None
    default_partition: str | None
    default_rows: int
    detach_pending: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "partitioned" and self.months_ahead >= 1 and self.default_rows == 0 and not self.detach_pending

    def to_dict(self) -> dict[str, object]:
        return {"parent": self.parent, "key": self.key, "state": self.state, "partitions": self.partitions,
                "months_ahead": self.months_ahead, "months_ahead_wanted": self.months_ahead_wanted,
                "newest_bound": self.newest_bound.isoformat() if self.newest_bound else None,
                "default_partition": self.default_partition, "default_rows": self.default_rows,
                "detach_pending": self.detach_pending, "ok": self.ok}


# --- reading -------------------------------------------------------------------------------


def has_registry(conn: psycopg.Connection) -> bool:
    """Whether revision 0030 is applied (its registry table exists)."""
    row = conn.execute("SELECT to_regclass('trackschema.partitioned_tables') IS NOT NULL").fetchone()
    return bool(row and row[0])


def registered(conn: psycopg.Connection, table: str | None = None) -> list[PartitionedTable]:
    """The tables trackschema partitioned (or is converting), optionally only `table`."""
    if not has_registry(conn):
        raise PartitionError("no table is partitioned by trackschema here: run `trackschema upgrade head` first")
    rows = conn.execute(
        """SELECT CASE WHEN parent_schema = 'public' THEN quote_ident(parent_name)
                       ELSE format('%I.%I', parent_schema, parent_name) END,
                  key_column, months_ahead, default_partition, history_partition, state
             FROM trackschema.partitioned_tables ORDER BY parent_schema, parent_name"""
    ).fetchall()
    tables = [PartitionedTable(*row) for row in rows]
    if table is not None:
        wanted = table.removeprefix("public.")
        tables = [t for t in tables if t.parent == wanted]
        if not tables:
            known = ", ".join(t.parent for t in registered(conn)) or "none"
            raise PartitionError(f"{table} is not partitioned by trackschema (partitioned: {known})")
    return tables


def partitions_of(conn: psycopg.Connection, parent: str, *, estimate: bool = False) -> list[PartitionInfo]:
    """The partitions of `parent`, oldest first, the default partition last."""
    rows = conn.execute(
        """SELECT b.partition::text, b.lower_bound, b.upper_bound, b.is_default, b.detach_pending,
                  greatest(c.reltuples, 0)::bigint, pg_total_relation_size(b.partition)
             FROM trackschema.partition_bounds(%s::regclass) b JOIN pg_class c ON c.oid = b.partition
            ORDER BY b.is_default, b.lower_bound NULLS FIRST""",
        (parent,),
    ).fetchall()
    result = []
    for name, lower, upper, is_default, pending, reltuples, size in rows:
        count = reltuples if estimate else _count(conn, name)
        result.append(PartitionInfo(parent, name, lower, upper, count, size, is_default, pending, estimate))
    return result


def _count(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(quote_ident(name))).fetchone()
    return row[0] if row else 0


@dataclass(frozen=True)
class ListOptions(Options):
    """`partitions list`."""

    operation = "partitions list"
    table: str | None = option(Name(), None, "Only this partitioned table.")
    estimate: bool = option(Flag(), False, "Row counts from planner statistics instead of counting.")


def list_partitions(settings: Settings, table: str | None = None, *, estimate: bool = False) -> list[PartitionInfo]:
    """Every partition of every table trackschema partitioned. Rows are counted exactly
    (a sequential scan per partition) unless `estimate`, which reads pg_class.reltuples."""
    with connect(settings.require_url()) as conn:
        return [p for t in registered(conn, table) if t.state == "partitioned" for p in partitions_of(conn, t.parent, estimate=estimate)]


# --- ensure ----------------------------------------------------------------------------------


def ensure_on(conn: psycopg.Connection, months_ahead: int | None = None, table: str | None = None) -> list[CreatedPartition]:
    """Call trackschema.partition_ensure (one transaction): months ahead, gaps, default drained."""
    if months_ahead is not None:
        months_ahead = MONTHS_AHEAD.parse("--months-ahead", months_ahead)
    tables = registered(conn, table)
    only = tables[0].parent if table is not None else None
    rows = conn.execute(
        "SELECT parent, partition, lower_bound, upper_bound, rows_moved FROM trackschema.partition_ensure(%s, %s::regclass)",
        (months_ahead, only),
    ).fetchall()
    return [CreatedPartition(*row) for row in rows]


def ensure(settings: Settings, months_ahead: int | None = None, table: str | None = None) -> list[CreatedPartition]:
    """Make sure every partitioned table has partitions for the current month and
    `months_ahead` more (default: each table's own setting). Idempotent."""
    with connect(settings.require_url(), application_name="trackschema-partitions") as conn:
        set_timeouts(conn.cursor(), lock_timeout=settings.lock_timeout, statement_timeout=settings.statement_timeout)
        return retry_on_lock_timeout(
            lambda: ensure_on(conn, months_ahead, table), retries=settings.lock_retries, base_delay=settings.retry_backoff
        )


# --- retire ----------------------------------------------------------------------------------


def cutoff_for(conn: psycopg.Connection, older_than: str | float | None, before: datetime | None) -> datetime:
    """The retirement cutoff: `before` as given, or the server's now() minus `older_than`."""
    if (older_than is None) == (before is None):
        raise PartitionError("say which partitions to retire: --older-than 90d, or --before 2026-01-01T00:00:00+00:00")
    if before is not None:
        if before.tzinfo is None:
            raise PartitionError(f"--before {before.isoformat()} has no time zone: add one (e.g. +00:00)")
        return before
    seconds = RETIRE_AGE.parse("--older-than", older_than)
    row = conn.execute("SELECT now() - make_interval(secs => %s)", (seconds,)).fetchone()
    assert row is not None
    return row[0]


def retirement_plan(conn: psycopg.Connection, cutoff: datetime, table: str | None = None) -> list[PartitionInfo]:
    """Partitions whose every possible row is older than `cutoff`: the upper bound
    (exclusive) is at or before it. A partition that straddles the cutoff stays."""
    chosen = [
        p
        for t in registered(conn, table)
        if t.state == "partitioned"
        for p in partitions_of(conn, t.parent, estimate=True)
        if not p.is_default and p.upper is not None and p.upper <= cutoff
    ]
    return [replace(p, rows=_count(conn, p.partition), rows_estimated=False) for p in chosen]


@dataclass(frozen=True)
class RetireOptions(Options):
    """`partitions retire`: which partitions (by age or by an instant), and what happens
    to them. Exactly one of `older_than` and `before` is required."""

    operation = "partitions retire"
    older_than: float | None = option(RETIRE_AGE, None, "Retire partitions whose every row is older than this (e.g. 90d).")
    before: datetime | None = option(Instant(), None, "Retire partitions that end at or before this instant (with a UTC offset).")
    action: str = option(Choice(("archive", "drop")), "archive", "Move retired partitions to the archive schema, or drop them.")
    archive_schema: str = option(Name(), DEFAULT_ARCHIVE_SCHEMA, "Schema that receives archived partitions.")
    dry_run: bool = option(Flag(), False, "Show what would be retired; change nothing.")
    table: str | None = option(Name(), None, "Only this partitioned table.")

    def check(self, label: Callable[[str], str]) -> None:
        if (self.older_than is None) == (self.before is None):
            raise InputError(f"say which partitions to retire: {label('older_than')} 90d, or {label('before')} 2026-01-01T00:00:00+00:00 (one of them)")


def retire(settings: Settings, options: RetireOptions | None = None, **given: Any) -> RetireResult:
    """Detach every partition entirely older than the cutoff, then move it to the archive
    schema (`action="archive"`) or drop it (`"drop"`); `dry_run` only reports. The options
    are `options`, or built from `given` (`older_than=`, `before=`, ...). Lock timeouts are
    retried as `settings` says. See `retire_on`."""
    options = options if options is not None else RetireOptions(**given)
    with connect(settings.require_url(), application_name="trackschema-partitions") as conn:
        set_timeouts(conn.cursor(), lock_timeout=settings.lock_timeout, statement_timeout=settings.statement_timeout)
        return retire_on(conn, options, retries=settings.lock_retries, backoff=settings.retry_backoff)


def retire_on(conn: psycopg.Connection, options: RetireOptions, *, retries: int = 5, backoff: float = 1.0) -> RetireResult:
    """Retire on an autocommit connection: DETACH ... CONCURRENTLY cannot run in a
    transaction block. Each partition is its own step (detach, then move or drop); a
    failure leaves the earlier ones done, and a rerun finishes a half-done detach. Lock
    timeouts are retried `retries` times with backoff."""
    action, archive_schema = options.action, options.archive_schema
    cutoff = cutoff_for(conn, options.older_than, options.before)
    plan = retirement_plan(conn, cutoff, options.table)
    _refuse_needed(conn, plan)
    if action == "archive":
        clashes = [p.partition for p in plan if _exists(conn, archive_schema, p.partition.split(".")[-1])]
        if clashes:
            raise PartitionError(f"{archive_schema} already holds tables named {', '.join(clashes)}: rename or drop them there first")

    def destination(p: PartitionInfo) -> str | None:
        return f"{archive_schema}.{p.partition.split('.')[-1]}" if action == "archive" else None

    if options.dry_run:
        return RetireResult(cutoff, True, [_retired(p, action, destination(p), done=False) for p in plan])
    done = []
    for p in plan:
        _refuse_needed(conn, [p])  # again: the check above may be minutes old
        distributed = is_distributed(conn, p.parent)
        retry_on_lock_timeout(lambda p=p, d=distributed: _detach(conn, p, distributed=d), retries=retries, base_delay=backoff)
        if action == "archive":
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(archive_schema)))
            move = sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(quote_ident(p.partition), sql.Identifier(archive_schema))
        else:
            move = sql.SQL("DROP TABLE {}").format(quote_ident(p.partition))
        retry_on_lock_timeout(lambda move=move, d=distributed: _ddl(conn, move, distributed=d), retries=retries, base_delay=backoff)
        done.append(_retired(p, action, destination(p), done=True))
    return RetireResult(cutoff, False, done)


def _refuse_needed(conn: psycopg.Connection, plan: list[PartitionInfo]) -> None:
    """Refuse, before anything is detached, an entity_events partition that a consumer of
    the outbox has not passed yet (docs/design.md#outbox): its unhandled events would go.
    On Citus the answer is computed from Python (`partitions.consumers`)."""
    needed = [(p.partition, partition_needs(conn, p.partition)) for p in plan]
    lines = [f"{part} (" + ", ".join(f"consumer {c}: {e:,} events not handled, {r:,} failed events open" for c, e, r in needs) + ")"
             for part, needs in needed if needs]
    if lines:
        raise PartitionError("refusing to retire partitions that consumers still need: " + "; ".join(lines)
                             + ": let the consumers catch up (trackschema queue status), or unregister a consumer that is gone")


def _retired(p: PartitionInfo, action: str, destination: str | None, *, done: bool) -> RetiredPartition:
    assert p.upper is not None
    return RetiredPartition(p.parent, p.partition, p.lower, p.upper, p.rows, p.bytes, action, destination, done)


def _exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s)",
        (schema, name),
    ).fetchone()
    return bool(row and row[0])


def _ddl(conn: psycopg.Connection, statement: sql.Composable, *, distributed: bool) -> None:
    """Run `statement` on the autocommit `conn`; on a Citus distributed table inside a
    transaction that first sends the session's lock_timeout to the workers (`SET LOCAL`
    with `citus.propagate_set_commands = 'local'`), so a shard lock held on a worker is not
    waited for without limit (measured: a worker-side reader held a plain DETACH for 5 s
    under a 1 s coordinator lock_timeout; propagated, it fails after 1 s with 55P03)."""
    if not distributed:
        conn.execute(statement)
        return
    with conn.transaction():
        row = conn.execute("SELECT current_setting('lock_timeout')").fetchone()
        conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(row[0] if row else "0")))
        conn.execute(statement)


def _detach(conn: psycopg.Connection, p: PartitionInfo, *, distributed: bool = False) -> None:
    """DETACH ... CONCURRENTLY (or FINALIZE a half-done one; plain DETACH beside a default
    partition, and on a Citus distributed table, which refuses CONCURRENTLY: see `_ddl`)."""
    state = conn.execute(
        """SELECT i.inhdetachpending,
                  EXISTS (SELECT 1 FROM pg_inherits d JOIN pg_class dc ON dc.oid = d.inhrelid
                           WHERE d.inhparent = i.inhparent AND pg_get_expr(dc.relpartbound, dc.oid) = 'DEFAULT')
             FROM pg_inherits i WHERE i.inhrelid = %s::regclass AND i.inhparent = %s::regclass""",
        (p.partition, p.parent),
    ).fetchone()
    if state is None:
        return  # already detached by an earlier attempt
    pending, has_default = state
    parent, part = quote_ident(p.parent), quote_ident(p.partition)
    if pending:
        statement = sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(parent, part)
    elif has_default or distributed:
        statement = sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(parent, part)
    else:
        statement = sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(parent, part)
    try:
        _ddl(conn, statement, distributed=distributed)
    except psycopg.Error as exc:
        if sqlstate(exc) in {"55P03", "40P01"}:
            raise
        raise PartitionError(f"could not detach {p.partition} from {p.parent}: {str(exc).strip().splitlines()[0]}") from exc


# --- health (status, audits) -------------------------------------------------------------------


def health(conn: psycopg.Connection) -> list[PartitionHealth]:
    """Per partitioned table: months covered ahead of the current one (contiguously), rows
    sitting in the default partition, half-detached partitions, unfinished conversions.
    Empty when revision 0030 is not applied."""
    if not has_registry(conn):
        return []
    row = conn.execute("SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'").fetchone()
    assert row is not None
    # psycopg returns it in the session's TimeZone: month arithmetic is done in UTC
    this_month: datetime = row[0].astimezone(timezone.utc)
    result = []
    for t in registered(conn):
        if t.state != "partitioned":
            result.append(PartitionHealth(t.parent, t.key, t.state, 0, 0, t.months_ahead, None, None, 0))
            continue
        parts = partitions_of(conn, t.parent, estimate=True)
        ranges = [p for p in parts if not p.is_default]
        default = next((p for p in parts if p.is_default), None)
        default_rows = 0
        if default is not None:
            default_rows = _count(conn, default.partition)
        result.append(PartitionHealth(
            t.parent, t.key, t.state, len(parts), _months_ahead(ranges, this_month), t.months_ahead,
            max((p.upper for p in ranges if p.upper is not None), default=None),
            default.partition if default else None, default_rows,
            [p.partition for p in parts if p.detach_pending],
        ))
    return result


def _months_ahead(ranges: list[PartitionInfo], this_month: datetime) -> int:
    """Whole months after the current one covered without a gap (-1: not even this month)."""
    def covered(instant: datetime) -> bool:
        return any((p.lower is None or p.lower <= instant) and (p.upper is None or instant < p.upper) for p in ranges)

    if not covered(this_month):
        return -1
    months, month = 0, this_month
    while months < 1200:
        month = _add_month(month)
        if not covered(month):
            return months
        months += 1
    return months


def _add_month(instant: datetime) -> datetime:
    """The same instant a calendar month later; `instant` is the start of a UTC month."""
    return instant.replace(year=instant.year + instant.month // 12, month=instant.month % 12 + 1)


# --- the job ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnsureOptions(Options):
    """`partitions ensure`; the maintenance job takes the same two and more."""

    operation = "partitions ensure"
    months_ahead: int | None = option(MONTHS_AHEAD, None,
                                      "Months after the current one to have ready (default: each table's setting).")
    table: str | None = option(Name(), None, "Only this partitioned table.")


@dataclass(frozen=True)
class MaintenanceOptions(EnsureOptions):
    operation = "partition-maintenance"
    lock_timeout: float = option(Duration(minimum=0.01, maximum=3600), 5.0, "How long one DDL statement may wait for its lock.")
    older_than: float | None = option(RETIRE_AGE, None,
                                      "Also retire partitions whose every row is older than this (e.g. 90d).")
    action: str = option(Choice(("archive", "drop")), "archive", "What retiring does with a partition.")
    archive_schema: str = option(Name(), DEFAULT_ARCHIVE_SCHEMA, "Schema that receives archived partitions.")

    def retire_options(self) -> RetireOptions:
        """What the job retires when `older_than` is given: `partitions retire` with the same values."""
        return RetireOptions(older_than=self.older_than, action=self.action, table=self.table, archive_schema=self.archive_schema)


@job("partition-maintenance", schedule="15 0 * * *",
     description="make monthly partitions ahead (months_ahead=N); with older_than=90d also retire old ones (action=archive|drop)",
     options=MaintenanceOptions)
def partition_maintenance(conn: psycopg.Connection, options: MaintenanceOptions) -> dict[str, Any]:
    """Ensure partitions ahead; retire only when `older_than` is given (retiring moves data
    out of the live table, so a schedule has to ask for it). Lock timeouts are retried
    as `partitions ensure` and `partitions retire` retry them."""
    policy = Settings.from_env()  # the retry policy of the CLI: --retries' default, TRACKSCHEMA_LOCK_RETRIES
    set_timeouts(conn.cursor(), lock_timeout=options.lock_timeout)
    created = retry_on_lock_timeout(lambda: ensure_on(conn, options.months_ahead, options.table),
                                    retries=policy.lock_retries, base_delay=policy.retry_backoff)
    result: dict[str, Any] = {"created": [c.to_dict() for c in created]}
    if options.older_than is not None:
        retired = retire_on(conn, options.retire_options(), retries=policy.lock_retries, backoff=policy.retry_backoff)
        result["retired"] = retired.to_dict()
    return result
