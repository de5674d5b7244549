"""The backfill engine: fill promoted columns from their JSON keys, batch by batch.

A job, not a migration (`trackschema backfill run [NAME...]`, job `promotion-backfill`). It
walks each table in ranges of physical pages (ctid ranges: a TID Range Scan reads exactly
those pages, which keeps a batch as cheap per row as one big UPDATE) and in each batch
runs one set-based UPDATE over the rows that have a key but an empty column. Rows whose
value cannot be promoted are written too, their column left NULL: the dual-write trigger
sees them and records the reject with its reason (after contract, with no trigger, the
batch records the rejects itself first).

Every batch is one transaction: the UPDATE, a row in `trackschema.backfill_batches` and
the new position in `trackschema.backfill_checkpoints` commit together or not at all. A
run stopped at any point (Ctrl-C, kill -9, a lost connection) loses at most the batch in
flight, and the next run starts where the last committed batch ended: nothing is done
twice, nothing is skipped. Rows the application writes meanwhile go through the trigger,
so rows behind the position, or beyond the table's end when the pass began, are in step
already; a table rewrite (VACUUM FULL, CLUSTER, pg_repack: new relfilenode) invalidates
page positions and starts a new pass.

Batches are marked `SET LOCAL trackschema.maintenance = on` (updated_at triggers leave the
rows alone) and run with their own lock_timeout, shorter by default than
deadlock_timeout: when a batch and an application transaction wait for each other, the
batch gives up first, rolls back, and is retried smaller after a pause. The batch size (in
pages) adapts so that a batch takes about `batch_time`, which also bounds how long an
application write can wait for a row the batch holds. One run per table at a time (an
advisory lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from trackschema.runtime.db import backoff_delay, connect, set_timeouts, sqlstate
from trackschema.errors import TrackschemaError
from trackschema.jobs.registry import job
from trackschema.promotions import expressions as ex
from trackschema.promotions.declarations import DUAL_WRITE_TRIGGERS, Promotion, by_table, select
from trackschema.promotions.options import BackfillOptions  # noqa: F401 - declared where the CLI reads it without the engine
from trackschema.runtime.settings import Settings

# Advisory-lock namespace for backfills: pg_try_advisory_lock(BACKFILL_LOCK_CLASS, hashtext(table)).
BACKFILL_LOCK_CLASS = 0x74726B03

# Errors after which a batch is rolled back and retried smaller: lock_not_available
# (lock_timeout), deadlock_detected, query_canceled (statement_timeout), and
# foreign_key_violation (a roadmap item deleted between the batch's lookup and its check).
RETRYABLE = frozenset({"55P03", "40P01", "57014", "23503"})


class BackfillError(TrackschemaError):
    """The backfill cannot start or had to stop; the checkpoint keeps what was done."""


@dataclass(frozen=True)
class BackfillProgress:
    """What the engine reports after counting and after every batch."""

    table: str
    promotions: tuple[str, ...]
    rows_total: int
    rows_done: int
    rows_rejected: int
    batches: int
    retries: int
    batch_pages: int
    rows_per_second: float | None
    finished: bool = False

    @property
    def rows_remaining(self) -> int:
        return max(self.rows_total - self.rows_done, 0) if not self.finished else 0

    @property
    def eta_seconds(self) -> float | None:
        if self.finished:
            return 0.0
        if not self.rows_per_second:
            return None
        return self.rows_remaining / self.rows_per_second


@dataclass
class TableRun:
    """The outcome for one table."""

    table: str
    promotions: list[str]
    status: str  # "completed" | "nothing to do"
    passes: dict[str, int] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)
    rows_total: int = 0
    rows_done: int = 0
    rows_rejected: int = 0
    batches: int = 0
    retries: int = 0
    first_page: int = 0
    end_page: int = 0
    seconds: float = 0.0
    stale_rejects_removed: int = 0
    reference_checked: bool = False
    dual_write: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float | None:
        return self.rows_done / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "rows_per_second": self.rows_per_second}


@dataclass
class BackfillResult:
    tables: list[TableRun] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"tables": [t.to_dict() for t in self.tables]}


ProgressCallback = Callable[[BackfillProgress], None]


@dataclass
class _Checkpoint:
    promotion: Promotion
    pass_no: int
    next_page: int
    end_page: int
    resumed: bool


def run(settings: Settings, names: list[str] | None = None, options: BackfillOptions | None = None,
        on_progress: ProgressCallback | None = None) -> BackfillResult:
    """Backfill the named promotions (all when none), table by table; see the module doc."""
    promotions = select(names)
    options = options or BackfillOptions()
    with connect(settings.require_url(), application_name="trackschema-backfill") as conn:
        return run_on(conn, promotions, options, on_progress)


def run_on(conn: psycopg.Connection, promotions: list[Promotion], options: BackfillOptions,
           on_progress: ProgressCallback | None = None) -> BackfillResult:
    """`run` on an open autocommit connection (the job runner's)."""
    _prepare_session(conn, options)
    result = BackfillResult()
    for table, ps in by_table(promotions).items():
        try:
            with _table_lock(conn, table, options.lock_wait):
                result.tables.append(_run_table(conn, table, ps, options, on_progress))
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackfillError(
                f"backfill of {table} stopped: {first} ({sqlstate(exc) or type(exc).__name__}); "
                "committed batches are kept: rerun `trackschema backfill run` to resume"
            ) from exc
    return result


def _prepare_session(conn: psycopg.Connection, options: BackfillOptions) -> None:
    with conn.cursor() as cur:
        # Batches are short, planned again and again: JIT compilation would cost more than it saves.
        cur.execute("SET jit = off")
        set_timeouts(cur, lock_timeout=options.lock_timeout, statement_timeout=options.statement_timeout)
        # Notice a vanished client (kill -9) while a batch runs, and end the batch: its locks go.
        if conn.info.server_version >= 140000:
            cur.execute("SET client_connection_check_interval = '1s'")


@contextmanager
def _table_lock(conn: psycopg.Connection, table: str, wait: float) -> Iterator[None]:
    """Session advisory lock on the table's backfill, waited for up to `wait` seconds (a run
    killed a moment ago may still hold it until its server process notices)."""
    deadline = time.monotonic() + wait
    while True:
        got = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (BACKFILL_LOCK_CLASS, table)).fetchone()
        if got and got[0]:
            break
        if time.monotonic() >= deadline:
            holder = conn.execute(
                """SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                    WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = hashtext(%s)::oid""",
                (BACKFILL_LOCK_CLASS, table),
            ).fetchone()
            who = f"pid {holder[0]} ({holder[1]})" if holder else "another session"
            raise BackfillError(f"a backfill of {table} is already running in {who}: wait for it, or stop it and rerun to resume")
        time.sleep(0.2)
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (BACKFILL_LOCK_CLASS, table))


def _table_state(conn: psycopg.Connection, table: str, ps: list[Promotion]) -> tuple[int, int, bool, bool]:
    """(relfilenode, pages, dual-write trigger present, references checkable) or a clear error."""
    row = conn.execute(
        "SELECT c.relkind, pg_relation_filenode(c.oid), pg_relation_size(c.oid) / current_setting('block_size')::bigint "
        "FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (table,),
    ).fetchone()
    if row is None:
        raise BackfillError(f"table {table} does not exist: run `trackschema upgrade` first")
    relkind, filenode, pages = row
    if relkind != "r":
        raise BackfillError(f"{table} is not a plain table (relkind {relkind}): the backfill walks page ranges and needs one")
    missing = [p.column for p in ps if not conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped", (table, p.column)
    ).fetchone()]
    if missing:
        raise BackfillError(
            f"{table} has no column {', '.join(missing)}: run `trackschema upgrade 0020_promotion_expand` (or head) first"
        )
    trigger = DUAL_WRITE_TRIGGERS.get(table)
    has_trigger = bool(trigger and conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s", (table, trigger)
    ).fetchone())
    # References are checked once their foreign key exists; before, the dual-write trigger
    # (version 1) promotes them by form, and the batch must agree with it.
    fks = [p.foreign_key for p in ps if p.foreign_key]
    has_fk = bool(fks) and bool(conn.execute(
        "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = ANY(%s)", (table, fks)
    ).fetchone())
    return filenode, pages, has_trigger, has_fk


def _load_checkpoints(conn: psycopg.Connection, table: str, ps: list[Promotion], filenode: int, pages: int,
                      restart: bool) -> tuple[list[_Checkpoint], list[Promotion]]:
    """Checkpoints to work on, and the promotions whose finished pass needs a recount."""
    rows = {r[0]: r[1:] for r in conn.execute(
        "SELECT promotion, relfilenode, pass, next_page, end_page, finished_at FROM trackschema.backfill_checkpoints WHERE promotion = ANY(%s)",
        ([p.name for p in ps],),
    ).fetchall()}
    active: list[_Checkpoint] = []
    finished: list[Promotion] = []
    for p in ps:
        row = rows.get(p.name)
        if row is None:
            active.append(_new_pass(conn, p, table, filenode, pages, 1))
            continue
        cp_filenode, pass_no, next_page, end_page, finished_at = row
        if restart or cp_filenode != filenode:
            active.append(_new_pass(conn, p, table, filenode, pages, pass_no + 1))
        elif finished_at is None:
            active.append(_Checkpoint(p, pass_no, next_page, end_page, resumed=next_page > 0))
        else:
            finished.append(p)
    return active, finished


def _new_pass(conn: psycopg.Connection, p: Promotion, table: str, filenode: int, pages: int, pass_no: int) -> _Checkpoint:
    conn.execute(
        """INSERT INTO trackschema.backfill_checkpoints (promotion, table_name, relfilenode, pass, next_page, end_page)
           VALUES (%s, %s, %s, %s, 0, %s)
           ON CONFLICT (promotion) DO UPDATE SET relfilenode = excluded.relfilenode, pass = excluded.pass, next_page = 0,
               end_page = excluded.end_page, started_at = now(), advanced_at = now(), finished_at = NULL""",
        (p.name, table, filenode, pass_no, pages),
    )
    return _Checkpoint(p, pass_no, 0, pages, resumed=False)


def _count_remaining(conn: psycopg.Connection, table: str, cps: list[_Checkpoint], statement_timeout: float) -> int:
    """Exact number of rows the pass(es) still have to write (a key, an empty column, no
    reject): one scan of the remaining pages, without statement_timeout (it only reads,
    and takes no lock that blocks writers)."""
    if not cps:
        return 0
    lo = min(c.next_page for c in cps)
    hi = max(c.end_page for c in cps)
    if lo >= hi:
        return 0
    per = sql.SQL(" OR ").join(
        sql.SQL("(t.ctid >= {lo}::tid AND t.ctid < {hi}::tid AND {needs})").format(
            lo=sql.Literal(f"({c.next_page},0)"), hi=sql.Literal(f"({c.end_page},0)"), needs=ex.unfilled(c.promotion)
        )
        for c in cps
    )
    query = sql.SQL("SELECT count(*) FROM {table} t WHERE t.ctid >= {lo}::tid AND t.ctid < {hi}::tid AND ({per})").format(
        table=sql.Identifier(table), lo=sql.Literal(f"({lo},0)"), hi=sql.Literal(f"({hi},0)"), per=per
    )
    with conn.cursor() as cur:
        set_timeouts(cur, statement_timeout=0)
        try:
            row = cur.execute(query).fetchone()
        finally:
            set_timeouts(cur, statement_timeout=statement_timeout)
    return int(row[0]) if row else 0


def _run_table(conn: psycopg.Connection, table: str, ps: list[Promotion], options: BackfillOptions,
               on_progress: ProgressCallback | None) -> TableRun:
    started = time.monotonic()
    filenode, pages, has_trigger, has_fk = _table_state(conn, table, ps)
    out = TableRun(table, [p.name for p in ps], "completed", reference_checked=has_fk, dual_write=has_trigger)
    out.warnings += _deadlock_warning(conn, options)
    active = _plan_passes(conn, table, ps, filenode, pages, options)
    out.passes = {c.promotion.name: c.pass_no for c in active}
    out.resumed = [c.promotion.name for c in active if c.resumed]
    if active:
        out.first_page = min(c.next_page for c in active)
        out.end_page = max(c.end_page for c in active)
        out.rows_total = _count_remaining(conn, table, active, options.statement_timeout)
        _report(on_progress, out, 0, False)
        last_batch_pages = _batches(conn, table, active, options, has_trigger, has_fk, out, on_progress)
    else:
        out.status, last_batch_pages = "nothing to do", 0
    out.stale_rejects_removed = _purge_stale_rejects(conn, ps)
    out.seconds = time.monotonic() - started
    _report(on_progress, out, last_batch_pages, True, out.rows_per_second)
    return out


def _plan_passes(conn: psycopg.Connection, table: str, ps: list[Promotion], filenode: int, pages: int,
                 options: BackfillOptions) -> list[_Checkpoint]:
    """The passes this run works on: unfinished ones resumed, new ones where needed."""
    if options.retry_rejects:
        # Forget the rejects: a new pass writes those rows again, and what still cannot be
        # promoted is rejected again (with today's reason: a referenced row may exist now).
        conn.execute("DELETE FROM trackschema.promotion_rejects WHERE promotion = ANY(%s)", ([p.name for p in ps],))
    active, finished = _load_checkpoints(conn, table, ps, filenode, pages, options.restart or options.retry_rejects)
    for p in finished:
        # A finished pass is repeated only when rows still have work left (written while
        # the trigger was absent, say); counting them costs one scan of the table.
        if _count_remaining(conn, table, [_Checkpoint(p, 0, 0, pages, False)], options.statement_timeout):
            row = conn.execute("SELECT pass FROM trackschema.backfill_checkpoints WHERE promotion = %s", (p.name,)).fetchone()
            active.append(_new_pass(conn, p, table, filenode, pages, (row[0] if row else 0) + 1))
    return active


def _batches(conn: psycopg.Connection, table: str, active: list[_Checkpoint], options: BackfillOptions,
             has_trigger: bool, has_fk: bool, out: TableRun, on_progress: ProgressCallback | None) -> int:
    """Batches until every pass reaches its end page. A batch starts at the lowest position
    and covers the promotions standing there; it stops where another pass stands, so passes
    that meet go on together. Failed batches (lock timeout...) are retried smaller. Returns
    the last batch size in pages."""
    batch_pages = max(1, min(options.max_batch_pages, round(options.first_batch_rows / max(1.0, _rows_per_page(conn, table)))))
    failures = 0
    work_started = time.monotonic()
    while pending := [c for c in active if c.next_page < c.end_page]:
        lo = min(c.next_page for c in pending)
        included = [c for c in pending if c.next_page == lo]
        hi = min([lo + batch_pages] + [c.end_page for c in included] + [c.next_page for c in pending if c.next_page > lo])
        batch_started = time.monotonic()
        try:
            done, rejected = _run_batch(conn, table, included, lo, hi, has_trigger, has_fk, batch_started)
        except psycopg.Error as exc:
            if sqlstate(exc) not in RETRYABLE:
                raise
            failures += 1
            out.retries += 1
            if failures > options.max_retries:
                raise BackfillError(
                    f"backfill of {table} stopped after {failures} failed attempts at pages {lo}-{hi} "
                    f"({type(exc).__name__}: {str(exc).strip().splitlines()[0]}); what was done is kept: rerun to resume"
                ) from exc
            batch_pages = max(1, batch_pages // 2)
            time.sleep(backoff_delay(min(failures, 6), max(options.batch_time, 0.05)))
            continue
        failures = 0
        elapsed = time.monotonic() - batch_started
        for c in included:
            c.next_page = hi
        out.rows_done += done
        out.rows_rejected += rejected
        out.batches += 1
        # Adapt: aim at batch_time, at most doubling or halving per batch.
        factor = min(2.0, max(0.5, options.batch_time / max(elapsed, 1e-3)))
        batch_pages = max(1, min(options.max_batch_pages, int(batch_pages * factor)))
        if options.sleep:
            time.sleep(options.sleep)
        spent = time.monotonic() - work_started
        _report(on_progress, out, batch_pages, False, out.rows_done / spent if spent > 0 and out.rows_done else None)
    return batch_pages


def _run_batch(conn: psycopg.Connection, table: str, included: list[_Checkpoint], lo: int, hi: int,
               has_trigger: bool, has_fk: bool, started: float) -> tuple[int, int]:
    """One batch in one transaction: update, record, move the checkpoint."""
    ps = [c.promotion for c in included]
    params = {"lo": f"({lo},0)", "hi": f"({hi},0)"}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT set_config('trackschema.maintenance', 'on', true)")
        rejected_first = _record_rejects(cur, table, ps, has_fk, params) if not has_trigger else 0
        update = ex.fill_statement(table, ps, reference_checked=has_fk, ranged=True)
        unfilled = sql.SQL(" OR ").join(ex.needs_fill(p, None) for p in ps)
        cur.execute(sql.SQL("WITH u AS ({update} RETURNING {unfilled} AS unfilled) "
                            "SELECT count(*), count(*) FILTER (WHERE unfilled) FROM u").format(update=update, unfilled=unfilled), params)
        updated, rejected = cur.fetchone()  # type: ignore[misc]
        if not has_trigger:
            # rows rejected first and left alone count as visited; rows the UPDATE wrote
            # that still lack a value were among those rejected first
            updated, rejected = updated + rejected_first - rejected, rejected_first
        cur.execute(
            """INSERT INTO trackschema.backfill_batches (table_name, promotions, first_page, end_page, rows_done, rows_rejected, seconds)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (table, [p.name for p in ps], lo, hi, updated, rejected, time.monotonic() - started),
        )
        cur.execute(
            """UPDATE trackschema.backfill_checkpoints
                  SET next_page = %(hi)s, advanced_at = now(), finished_at = CASE WHEN %(hi)s >= end_page THEN now() END
                WHERE promotion = ANY(%(names)s)""",
            {"hi": hi, "names": [p.name for p in ps]},
        )
    return int(updated), int(rejected)


def _record_rejects(cur: psycopg.Cursor, table: str, ps: list[Promotion], has_fk: bool, params: dict[str, str]) -> int:
    """Without the dual-write trigger (after contract), the batch records its rejects itself,
    before its UPDATE, which then leaves rows with nothing promotable alone. Returns how
    many rows got a reject."""
    selects = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {name}, t.id, {value}, {why} FROM {table} t "
                "WHERE t.ctid >= %(lo)s::tid AND t.ctid < %(hi)s::tid AND {needs} AND {promoted} IS NULL").format(
            name=sql.Literal(p.name), value=ex.value(p), why=ex.problem(p), table=sql.Identifier(table),
            needs=ex.unfilled(p), promoted=ex.promoted(p) if has_fk else ex.promoted_value(p),
        )
        for p in ps
    )
    cur.execute(sql.SQL(
        "WITH src (promotion, row_id, value, reason) AS ({selects}), ins AS ("
        "INSERT INTO trackschema.promotion_rejects AS r (promotion, row_id, value, reason) SELECT * FROM src "
        "ON CONFLICT (promotion, row_id) DO UPDATE SET value = excluded.value, reason = excluded.reason, last_seen = now() "
        "WHERE (r.value, r.reason) IS DISTINCT FROM (excluded.value, excluded.reason)) "
        "SELECT count(DISTINCT row_id) FROM src").format(selects=selects), params)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _purge_stale_rejects(conn: psycopg.Connection, ps: list[Promotion]) -> int:
    """Delete rejects whose row is gone, filled, or has no value for the key any more."""
    removed = 0
    for p in ps:
        cur = conn.execute(sql.SQL(
            "DELETE FROM trackschema.promotion_rejects r WHERE r.promotion = {name} AND NOT EXISTS "
            "(SELECT 1 FROM {table} t WHERE t.id = r.row_id AND {needs})").format(
            name=sql.Literal(p.name), table=sql.Identifier(p.table), needs=ex.needs_fill(p)))
        removed += cur.rowcount
    return removed


def _rows_per_page(conn: psycopg.Connection, table: str) -> float:
    row = conn.execute("SELECT reltuples, relpages FROM pg_class WHERE oid = to_regclass(%s)", (table,)).fetchone()
    if row and row[0] > 0 and row[1] > 0:
        return float(row[0]) / float(row[1])
    return 50.0


def _deadlock_warning(conn: psycopg.Connection, options: BackfillOptions) -> list[str]:
    row = conn.execute("SELECT setting::float / 1000 FROM pg_settings WHERE name = 'deadlock_timeout'").fetchone()
    deadlock = float(row[0]) if row else 1.0
    if options.batch_time + options.lock_timeout >= deadlock:
        return [f"batch time + lock timeout ({options.batch_time + options.lock_timeout:g}s) is not below deadlock_timeout "
                f"({deadlock:g}s): in a deadlock with an application transaction, the application may be the one cancelled"]
    return []


def _report(on_progress: ProgressCallback | None, out: TableRun, batch_pages: int, finished: bool, rate: float | None = None) -> None:
    if on_progress is None:
        return
    on_progress(BackfillProgress(
        table=out.table, promotions=tuple(out.promotions), rows_total=out.rows_total, rows_done=out.rows_done,
        rows_rejected=out.rows_rejected, batches=out.batches, retries=out.retries, batch_pages=batch_pages,
        rows_per_second=rate, finished=finished,
    ))


@job("promotion-backfill", schedule="30 3 * * *",
     description="Resume or finish the JSONB→column promotion backfills (a no-op when every pass is complete)",
     options=BackfillOptions)
def backfill_job(conn: psycopg.Connection, options: BackfillOptions) -> dict[str, Any]:
    """Params: see BackfillOptions (names, batch_time, sleep, lock_timeout, restart, ...)."""
    return run_on(conn, select(list(options.names or ())), options).to_dict()
