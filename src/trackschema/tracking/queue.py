"""Consumers of the entity_events outbox: the worker (`trackschema queue work`) and the
status of every consumer (`queue status`). Design: docs/design.md#outbox.

Every tracked change writes one `entity_events` row carrying its transaction id
(`xid`). A consumer is a name with a cursor (`trackschema.consumers`): a snapshot;
everything committed by it is handled. A worker repeats:

1. **window**: `consumer_next_window` opens one (or returns the one a dead worker left
   open): the events committed after the consumer's snapshot and by a new one, read
   once, in id order (write order, so each row's changes in commit order), into a
   server-side WITH HOLD cursor (`consumer_window_events`);
2. **batches**: per `batch` events, ONE transaction: `consumer_lock` (the consumer's
   row, if it is still where this worker left it), the handler (`handler(conn, events)`;
   it writes with `conn` inside this transaction and must neither commit nor roll back),
   `consumer_ack` (the new position; with the last batch the window's snapshot becomes
   the consumer's). The handler's writes and the position commit together: a batch is
   committed exactly once; a worker killed before the commit leaves the position where it
   was, and the batch is handled again by the next worker (at least once).
3. **failures**: when the handler raises, the batch rolls back and is handled again one
   event at a time (savepoints, same transaction); an event that fails alone gets an
   `event_retries` row (`consumer_retry_add`: retried with exponential backoff, dead with
   its error after the consumer's max_attempts). Later events of its entity are parked
   behind it (rows too, attempts 0) so an entity's events stay in commit order; other
   entities flow. Due retries are leased (`consumer_retry_claim`, committed at once so an
   attempt counts even if the worker dies), handled, and removed (`consumer_retry_done`)
   or failed again (`consumer_retry_fail`).

One worker per consumer at a time: a worker takes the consumer's session-level advisory
lock (class OUTBOX_LOCK, key the consumer's id) and others wait for it as standbys (a
killed worker's session ends, its lock with it). `consumer_lock` still guards every batch:
a worker whose consumer moved on (say it lost its lock through a reconnect) drops its
window instead of handling a batch twice. Connection errors are not handler failures:
they end the worker.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

from trackschema.errors import TrackschemaError
from trackschema.operations.inputs import Count, Duration, Flag, InputError, Text
from trackschema.operations.options import Options, option
from trackschema.runtime.db import connect
from trackschema.runtime.settings import Settings

log = logging.getLogger("trackschema.queue")

DEFAULT_HANDLER = "trackschema.tracking.handlers:propagate"
DEFAULT_CONSUMER = "propagate"
STATUSES = ("pending", "processing", "dead")
# Advisory lock class of consumer ownership ('trck'); the key is trackschema.consumers.id.
OUTBOX_LOCK = 0x7472636B
_CONSUMER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,59}$")


class QueueEvent(NamedTuple):
    """One event as a handler sees it (immutable). `entity_event_id` is the entity_events
    row (read it for the change's state); `attempts` is 1 on first delivery; `retry_id` is
    set when the event comes from event_retries (a retry, or a row moved from the pre-0090
    queue, which may carry a `payload` and no event). A named tuple: a worker makes one per
    event, and a tuple is made several times faster than a frozen dataclass."""

    entity_event_id: UUID | None
    event_type: str
    entity_id: UUID | None
    occurred_at: datetime
    attempts: int = 1
    payload: Mapping[str, Any] = MappingProxyType({})
    retry_id: int | None = None
    claim_token: UUID | None = None

    @property
    def id(self) -> UUID | None:
        return self.entity_event_id


Handler = Callable[[psycopg.Connection, list[QueueEvent]], None]


@dataclass(frozen=True)
class DeadEvent:
    id: int
    consumer: str
    event_type: str
    entity_event_id: UUID | None
    attempts: int
    failed_at: datetime | None
    last_error: str | None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["failed_at"] = self.failed_at.isoformat() if self.failed_at else None
        data["entity_event_id"] = str(self.entity_event_id) if self.entity_event_id else None
        return data


@dataclass(frozen=True)
class ConsumerStatus:
    """One consumer, as trackschema.consumer_status() reports it: lag in events (outbox
    events not handled yet plus failed ones waiting for a retry) and in seconds (age of the
    oldest of them, 0 when none)."""

    name: str
    handler: str | None
    lag_events: int
    lag_seconds: float
    position_at: datetime
    window_open: bool
    handled: int
    retry_pending: int
    retry_processing: int
    dead: int
    max_attempts: int
    registered_at: datetime
    last_seen: datetime | None
    worker_active: bool

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        for key in ("position_at", "registered_at", "last_seen"):
            data[key] = data[key].isoformat() if data[key] else None
        data["lag_seconds"] = round(self.lag_seconds, 3)
        return data


@dataclass(frozen=True)
class QueueStats:
    """What is waiting, over every consumer. `by_status`: pending = events not handled yet
    (outbox and due-or-waiting retries), processing = leased retries, dead;
    `oldest_pending_seconds`: the largest consumer lag in seconds, None when nothing waits;
    `ready`: pending events a worker could take now; `expired_leases`: leased retries
    whose worker died. `consumers`: each one's lag (empty before revision 0090)."""

    by_status: dict[str, int]
    oldest_pending_seconds: float | None
    ready: int
    expired_leases: int
    recent_dead: list[DeadEvent] = field(default_factory=list)
    consumers: list[ConsumerStatus] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "by_status": self.by_status,
            "oldest_pending_seconds": self.oldest_pending_seconds,
            "ready": self.ready,
            "expired_leases": self.expired_leases,
            "recent_dead": [d.to_dict() for d in self.recent_dead],
            "consumers": [c.to_dict() for c in self.consumers],
        }


@dataclass(frozen=True)
class HandlerSpec:
    """An input kind: `module:function` naming a declared event handler (see
    `load_handler`), checked when parsed, so before anything is claimed."""

    def parse(self, option: str, value: Any) -> str:
        spec = str(value).strip()
        try:
            load_handler(spec)
        except TrackschemaError as exc:
            raise InputError(f"bad {option}: {exc}") from None
        return spec


@dataclass(frozen=True)
class ConsumerName:
    """An input kind: a consumer's name, 1 to 60 characters of letters, digits and `_.:-`,
    starting with a letter or digit (the check trackschema.consumers makes too)."""

    def parse(self, option: str, value: Any) -> str:
        name = str(value).strip()
        if not _CONSUMER_NAME.match(name):
            raise InputError(f"bad {option} {name[:40]!r}: give 1 to 60 letters, digits or _.:- starting with a letter or digit")
        return name


@dataclass(frozen=True)
class WorkerOptions(Options):
    """How a worker consumes.

    `consumer`: whose events (registered at the current snapshot the first time: it gets
    what commits from then on). `batch`: events per transaction. `visibility`: lease of a
    claimed batch of failed events (it must exceed a batch's handling time).
    `base_delay`/`max_delay`: backoff after a failure, doubled per attempt.
    `max_attempts`: tries of a failed event before it is dead (set when the consumer is
    registered). `once`: stop when nothing is ready instead of waiting for new events.
    """

    operation = "queue work"
    consumer: str = option(ConsumerName(), DEFAULT_CONSUMER, "Consumer whose events to handle (registered on first use).")
    batch: int = option(Count(1, 100_000), 1000, "Events handled per transaction.")
    visibility: float = option(Duration(minimum=1, maximum=86400), 30.0, "Lease of a claimed batch of failed events.")
    base_delay: float = option(Duration(maximum=86400, zero_allowed=True), 1.0, "Backoff after the first failure.")
    max_delay: float = option(Duration(maximum=30 * 86400, zero_allowed=True), 3600.0, "Longest backoff.")
    max_attempts: int = option(Count(1, 1000), 5, "Tries of a failed event before it is dead (for a new consumer).")
    idle_sleep: float = option(Duration(minimum=0.01, maximum=3600), 0.2, "Wait between polls when nothing is new.")
    once: bool = option(Flag(), False, "Stop when nothing is ready.")
    max_batches: int | None = option(Count(1, 100_000_000), None, "Stop after this many batches.")
    name: str | None = option(Text(max_length=60), None, "Worker name recorded on leased failed events.")
    handler: str = option(HandlerSpec(), DEFAULT_HANDLER,
                          "module:function declared with @event_handler, called with (connection, events) in the batch transaction.")


@dataclass
class WorkResult:
    """What one worker run did. `completed`: events handled; `failed`: failed attempts;
    `dead`: events left dead; `parked`: events set to wait behind a failure of their
    entity; `lost`: events dropped because another worker had moved the consumer on;
    `standby_seconds`: time spent waiting for another worker of the consumer to let go."""

    worker: str
    handler: str
    consumer: str = DEFAULT_CONSUMER
    batches: int = 0
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    dead: int = 0
    parked: int = 0
    lost: int = 0
    windows: int = 0
    standby_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["events_per_second"] = round(self.events_per_second, 1)
        return data


class ConsumerMoved(Exception):
    """The consumer is no longer where this worker left it (another worker moved it on)."""


class LeaseLost(Exception):
    """Another worker took over some failed events of this batch (their lease had run out)."""


HANDLER_MARK = "__trackschema_event_handler__"


def event_handler(fn: Handler) -> Handler:
    """Declare `fn(conn, events)` a queue event handler: `queue work --handler module:fn`
    refuses any callable not declared so (before a single event is claimed)."""
    setattr(fn, HANDLER_MARK, True)
    return fn


def load_handler(spec: str) -> Handler:
    """The declared event handler named by `module:function`, or a one-line error saying
    what is wrong. Only functions decorated with `@event_handler` are accepted: a handler
    runs inside the batch transaction and its failures are recorded against real events."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TrackschemaError(f"bad handler {spec!r}: write it as module:function (e.g. {DEFAULT_HANDLER})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrackschemaError(f"cannot import handler module {module_name!r}: {exc}") from exc
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise TrackschemaError(f"handler {spec!r}: module {module_name} has no function {attr!r}")
    if not getattr(handler, HANDLER_MARK, False):
        raise TrackschemaError(f"handler {spec!r} is not declared for handling events: decorate it with "
                               f"@trackschema.tracking.queue.event_handler (e.g. {DEFAULT_HANDLER})")
    return handler  # type: ignore[no-any-return]


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def distributed_outbox(conn: psycopg.Connection) -> bool:
    """entity_events is a Citus distributed table here (the citus extension is installed and
    lists it in pg_dist_partition as hash- or range-distributed)."""
    from trackschema.runtime.citus import is_distributed

    return is_distributed(conn, "public.entity_events")


CITUS_REFUSAL = (
    "{command} refused: entity_events is distributed on this Citus database, and the events on each worker's shards "
    "carry that worker's own transaction ids, which a consumer's cursor (a coordinator snapshot) cannot order: "
    "events would be skipped or handled twice; read changes per node with Citus change data capture "
    "(citus.enable_change_data_capture) instead (docs/citus.md#outbox)"
)


def refuse_on_distributed_outbox(conn: psycopg.Connection, command: str) -> None:
    """Raise a one-line TrackschemaError (exit 2) when the outbox consumers cannot be
    correct here: entity_events distributed on Citus (see CITUS_REFUSAL)."""
    if distributed_outbox(conn):
        raise TrackschemaError(CITUS_REFUSAL.format(command=command))


def _has_consumers(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('trackschema.consumers') IS NOT NULL").fetchone()
    return bool(row and row[0])


# --- status ----------------------------------------------------------------------------


def consumers_on(conn: psycopg.Connection) -> list[ConsumerStatus]:
    """Every consumer's lag and state (trackschema.consumer_status()); reads only."""
    rows = conn.execute(
        """SELECT name, handler, lag_events, lag_seconds, position_at, window_open, handled, retry_pending,
                  retry_processing, dead, max_attempts, registered_at, last_seen, worker_active
             FROM trackschema.consumer_status()"""
    ).fetchall()
    return [ConsumerStatus(*row) for row in rows]


def stats_on(conn: psycopg.Connection, *, dead_limit: int = 5) -> QueueStats:
    """Events waiting by status over every consumer, each consumer's lag, the most recent
    dead events. On a database before revision 0090, the event_queue table's counts."""
    if not _has_consumers(conn):
        return _legacy_stats_on(conn, dead_limit=dead_limit)
    consumers = consumers_on(conn)
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'pending' AND available_at <= now() AND attempts < max_attempts),
                  count(*) FILTER (WHERE status = 'processing' AND available_at <= now())
             FROM event_retries"""
    ).fetchone()
    assert row is not None
    dead = conn.execute(
        """SELECT id, consumer, event_type, entity_event_id, attempts, failed_at, last_error FROM event_retries
            WHERE status = 'dead' ORDER BY failed_at DESC NULLS LAST, id DESC LIMIT %s""",
        (dead_limit,),
    ).fetchall()
    processing = sum(c.retry_processing for c in consumers)
    pending = sum(c.lag_events for c in consumers) - processing
    outbox_pending = pending - sum(c.retry_pending for c in consumers)
    waiting = [c.lag_seconds for c in consumers if c.lag_events > 0]
    return QueueStats(
        by_status={"pending": pending, "processing": processing, "dead": sum(c.dead for c in consumers)},
        oldest_pending_seconds=round(max(waiting), 3) if waiting else None,
        ready=outbox_pending + int(row[0]),
        expired_leases=int(row[1]),
        recent_dead=[DeadEvent(*d) for d in dead],
        consumers=consumers,
    )


def _legacy_stats_on(conn: psycopg.Connection, *, dead_limit: int) -> QueueStats:
    counts = dict(conn.execute("SELECT status, count(*) FROM event_queue GROUP BY status").fetchall())
    row = conn.execute(
        """SELECT extract(epoch FROM now() - min(created_at) FILTER (WHERE status IN ('pending', 'processing')))::float8,
                  count(*) FILTER (WHERE status IN ('pending', 'processing') AND available_at <= now() AND attempts < max_attempts),
                  count(*) FILTER (WHERE status = 'processing' AND available_at <= now())
             FROM event_queue"""
    ).fetchone()
    assert row is not None
    dead = conn.execute(
        """SELECT id, '', event_type, entity_event_id, attempts, failed_at, last_error FROM event_queue
            WHERE status = 'dead' ORDER BY failed_at DESC NULLS LAST, id DESC LIMIT %s""",
        (dead_limit,),
    ).fetchall()
    return QueueStats(
        by_status={status: int(counts.get(status, 0)) for status in STATUSES},
        oldest_pending_seconds=round(row[0], 3) if row[0] is not None else None,
        ready=int(row[1]),
        expired_leases=int(row[2]),
        recent_dead=[DeadEvent(*d) for d in dead],
    )


def stats(settings: Settings) -> QueueStats:
    """`queue status` (alias `queue stats`). Refused where `queue work` is (a distributed
    outbox on Citus): its lag compares the same transaction ids."""
    with connect(settings.require_url(), application_name="trackschema-queue-status") as conn:
        refuse_on_distributed_outbox(conn, "queue status")
        return stats_on(conn)


@dataclass(frozen=True)
class UnregisterOptions(Options):
    """`queue unregister CONSUMER`: what the consumer has not handled is never given to it
    again, so it runs only when confirmed."""

    operation = "queue unregister"
    yes: bool = option(Flag(), False, "Really forget the consumer, its cursor and its failed events.")

    def check(self, label: Callable[[str], str]) -> None:
        if not self.yes:
            raise InputError(f"unregistering drops the consumer's cursor and failed events: rerun with {label('yes')} to do it")


@dataclass(frozen=True)
class Unregistered:
    consumer: str
    existed: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def unregister(settings: Settings, consumer: str) -> Unregistered:
    """Forget a consumer (trackschema.consumer_unregister): its cursor and failed events go;
    partitions it held back may be retired."""
    name = ConsumerName().parse("CONSUMER", consumer)
    with connect(settings.require_url(), application_name="trackschema-queue") as conn:
        row = conn.execute("SELECT trackschema.consumer_unregister(%s)", (name,)).fetchone()
    return Unregistered(name, bool(row and row[0]))


def partition_needs(conn: psycopg.Connection, partition: str) -> list[tuple[str, int, int]]:
    """The consumers that still need `partition` (a partition of entity_events): (consumer,
    events not handled yet, open failed events) each; [] when none does, for any other
    table, and before revision 0090 (trackschema.consumer_partition_needs)."""
    if not _has_consumers(conn):
        return []
    rows = conn.execute("SELECT consumer, events, retries FROM trackschema.consumer_partition_needs(%s::regclass)", (partition,)).fetchall()
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


# --- registration and ownership ---------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    id: int
    name: str
    handler: str | None
    max_attempts: int


def register_on(conn: psycopg.Connection, name: str, handler: str | None = None, max_attempts: int = 5) -> Consumer:
    """The consumer `name`, registered at the current snapshot if new (commits). Refuses a
    handler other than the one the consumer was registered with: one consumer's events
    are handled by one piece of code."""
    row = conn.execute(
        "SELECT id, name, handler, max_attempts FROM trackschema.consumer_register(%s, %s, %s)", (name, handler, max_attempts)
    ).fetchone()
    assert row is not None
    consumer = Consumer(*row)
    if handler is not None and consumer.handler is not None and consumer.handler != handler:
        raise TrackschemaError(f"consumer {name!r} is handled by {consumer.handler}, not {handler}: "
                               f"give another --consumer name for this handler (each consumer gets every event)")
    return consumer


def _take(conn: psycopg.Connection, consumer: Consumer) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (OUTBOX_LOCK, consumer.id)).fetchone()
    return bool(row and row[0])


def _own(conn: psycopg.Connection, consumer: Consumer, options: WorkerOptions, stop: threading.Event, result: WorkResult) -> bool:
    """Take the consumer's session advisory lock, waiting as a standby while another
    worker holds it (with `once`, give up at once). False when stopped first."""
    started = time.monotonic()
    while not _take(conn, consumer):
        if options.once or stop.is_set():
            result.standby_seconds += time.monotonic() - started
            return False
        stop.wait(options.idle_sleep)
    result.standby_seconds += time.monotonic() - started
    return True


# --- the outbox: windows and batches ----------------------------------------------------

_WINDOW_EVENTS = """
SELECT w.id, w.entity_id, w.table_name, w.action, w.occurred_at
  FROM trackschema.consumers c
 CROSS JOIN LATERAL trackschema.consumer_window_events(c.snapshot, c.window_snapshot) AS w
 WHERE c.name = %s AND c.window_no = %s AND (c.position IS NULL OR w.id > c.position)
 ORDER BY w.id
"""


@lru_cache(maxsize=1024)
def _event_type(table_name: str | None, action: str) -> str:
    return f"{table_name or 'entity'}.{action.lower()}"


def _event(row: tuple[Any, ...]) -> QueueEvent:
    event_id, entity_id, table_name, action, occurred_at = row
    return QueueEvent(event_id, _event_type(table_name, action), entity_id, occurred_at)


def _blocked_entities(conn: psycopg.Connection, consumer: str, events: list[QueueEvent]) -> set[UUID]:
    """Entities of `events` with an open (not dead) failed event for this consumer."""
    entities = list({e.entity_id for e in events if e.entity_id is not None})
    if not entities:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT entity_id FROM event_retries WHERE consumer = %s AND status <> 'dead' AND entity_id = ANY (%s)",
        (consumer, entities),
    ).fetchall()
    return {r[0] for r in rows}


def _lock(conn: psycopg.Connection, consumer: str, window_no: int, position: UUID | None) -> int:
    row = conn.execute("SELECT trackschema.consumer_lock(%s, %s, %s)", (consumer, window_no, position)).fetchone()
    if row is None or row[0] is None:
        raise ConsumerMoved(f"consumer {consumer} is no longer at window {window_no}, position {position}")
    return int(row[0])


def _ack(conn: psycopg.Connection, consumer: str, window_no: int, position: UUID | None, handled: int, done: bool) -> None:
    row = conn.execute("SELECT trackschema.consumer_ack(%s, %s, %s, %s, %s)", (consumer, window_no, position, handled, done)).fetchone()
    if not (row and row[0]):
        raise ConsumerMoved(f"consumer {consumer} left window {window_no}")


def _handle_batch(conn: psycopg.Connection, consumer: Consumer, handler: Handler, events: list[QueueEvent], window_no: int,
                  position: UUID | None, done: bool, options: WorkerOptions, result: WorkResult) -> None:
    """One batch of a window in one transaction (module docstring, steps 2 and 3)."""
    last = events[-1].entity_event_id if events else position
    try:
        with conn.transaction():
            open_failures = _lock(conn, consumer.name, window_no, position)
            blocked = _blocked_entities(conn, consumer.name, events) if open_failures else set()
            ready = [e for e in events if e.entity_id not in blocked] if blocked else events
            parked = [e for e in events if e.entity_id in blocked] if blocked else []
            if parked:
                conn.execute("SELECT trackschema.consumer_retry_add(%s, %s)", (consumer.name, [e.entity_event_id for e in parked]))
            if ready:
                handler(conn, ready)
            _ack(conn, consumer.name, window_no, last, len(ready), done)
        result.completed += len(ready)
        result.parked += len(parked)
        return
    except (psycopg.OperationalError, ConsumerMoved):
        raise
    except Exception as exc:  # noqa: BLE001 - the handler's failure; isolated below
        log.info("batch of %d failed (%s); handling its events one by one", len(events), _error_text(exc))
    with conn.transaction():
        open_failures = _lock(conn, consumer.name, window_no, position)
        blocked = _blocked_entities(conn, consumer.name, events) if open_failures else set()
        handled = 0
        parked_ids: list[UUID | None] = []
        for event in events:
            if event.entity_id in blocked:
                parked_ids.append(event.entity_event_id)
                continue
            try:
                with conn.transaction():  # a savepoint: a failure undoes only this event's writes
                    handler(conn, [event])
                handled += 1
            except psycopg.OperationalError:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded on the event
                conn.execute(
                    "SELECT trackschema.consumer_retry_add(%s, %s, %s, %s, %s)",
                    (consumer.name, [event.entity_event_id], _error_text(exc),
                     timedelta(seconds=options.base_delay), timedelta(seconds=options.max_delay)),
                )
                result.failed += 1
                if consumer.max_attempts <= 1:
                    result.dead += 1
                if event.entity_id is not None:
                    blocked.add(event.entity_id)
        if parked_ids:
            conn.execute("SELECT trackschema.consumer_retry_add(%s, %s)", (consumer.name, parked_ids))
        _ack(conn, consumer.name, window_no, last, handled, done)
    result.completed += handled
    result.parked += len(parked_ids)


def _window_step(conn: psycopg.Connection, consumer: Consumer, handler: Handler, options: WorkerOptions, result: WorkResult,
                 stop: threading.Event, on_batch: Callable[[WorkResult], None] | None, started: float) -> int:
    """Handle the consumer's current window (or as much of it as max_batches allows);
    returns the number of events read."""
    with conn.transaction():
        row = conn.execute("SELECT window_no, position FROM trackschema.consumer_next_window(%s)", (consumer.name,)).fetchone()
    assert row is not None
    window_no, position = row
    result.windows += 1
    read = 0
    with conn.cursor(name=f"trackschema_window_{consumer.id}_{window_no}", withhold=True) as cursor:
        cursor.execute(_WINDOW_EVENTS, (consumer.name, window_no))
        while True:
            events = [_event(r) for r in cursor.fetchmany(options.batch)]
            done = len(events) < options.batch
            read += len(events)
            result.claimed += len(events)
            if events or done:
                try:
                    _handle_batch(conn, consumer, handler, events, window_no, position, done, options, result)
                except ConsumerMoved as exc:
                    log.warning("%s; dropping this worker's copy of the window", exc)
                    result.lost += len(events)
                    return read
                if events:
                    position = events[-1].entity_event_id
                    result.batches += 1
                result.seconds = time.monotonic() - started
                if on_batch and events:
                    on_batch(result)
            if done or stop.is_set() or (options.max_batches is not None and result.batches >= options.max_batches):
                return read


# --- failed events ----------------------------------------------------------------------

_CLAIM = """SELECT id, entity_event_id, event_type, entity_id, created_at, attempts, payload, claim_token
              FROM trackschema.consumer_retry_claim(%s, %s, %s, %s)"""


def claim_failures(conn: psycopg.Connection, consumer: str, worker: str, batch: int, visibility: float) -> list[QueueEvent]:
    """Lease up to `batch` of the consumer's due failed events (own transaction, committed on return)."""
    with conn.transaction():
        rows = conn.execute(_CLAIM, (consumer, worker, batch, timedelta(seconds=visibility))).fetchall()
    return [QueueEvent(r[1], r[2], r[3], r[4], r[5], r[6] or {}, r[0], r[7]) for r in rows]


def _owned(conn: psycopg.Connection, events: list[QueueEvent]) -> list[QueueEvent]:
    rows = conn.execute(
        "SELECT id FROM event_retries WHERE id = ANY (%s) AND claim_token = %s FOR UPDATE",
        ([e.retry_id for e in events], events[0].claim_token),
    ).fetchall()
    owned = {r[0] for r in rows}
    return [e for e in events if e.retry_id in owned]


def _done(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    row = conn.execute("SELECT trackschema.consumer_retry_done(%s, %s)", ([e.retry_id for e in events], events[0].claim_token)).fetchone()
    if row is None or row[0] != len(events):
        raise LeaseLost(f"finished {row[0] if row else 0} of {len(events)} failed events")


def _fail(conn: psycopg.Connection, event: QueueEvent, exc: BaseException, options: WorkerOptions, result: WorkResult) -> None:
    row = conn.execute(
        "SELECT trackschema.consumer_retry_fail(%s, %s, %s, %s, %s)",
        (event.retry_id, event.claim_token, _error_text(exc), timedelta(seconds=options.base_delay), timedelta(seconds=options.max_delay)),
    ).fetchone()
    if row is None or row[0] is None:
        result.lost += 1
        return
    result.failed += 1
    if row[0] == "dead":
        result.dead += 1
        log.warning("event %s is dead after %d attempts: %s", event.entity_event_id, event.attempts, _error_text(exc))


def process_failures(conn: psycopg.Connection, handler: Handler, events: list[QueueEvent], options: WorkerOptions, result: WorkResult) -> None:
    """Handle leased failed events: all in one transaction, removed with
    consumer_retry_done; when the handler raises, one transaction per event, and an event
    that fails alone is failed again (backoff, or dead)."""
    try:
        with conn.transaction():
            mine = _owned(conn, events)
            if mine:
                handler(conn, mine)
                _done(conn, mine)
        result.completed += len(mine)
        result.lost += len(events) - len(mine)
        return
    except psycopg.OperationalError:
        raise
    except LeaseLost as exc:
        log.warning("failed events rolled back, lease lost (%s); handling them one by one", exc)
    except Exception as exc:  # noqa: BLE001 - isolated below
        if len(events) == 1:
            _fail(conn, events[0], exc, options, result)
            return
    for event in events:
        try:
            with conn.transaction():
                mine = _owned(conn, [event])
                if not mine:
                    result.lost += 1
                    continue
                handler(conn, mine)
                _done(conn, mine)
            result.completed += 1
        except psycopg.OperationalError:
            raise
        except LeaseLost:
            result.lost += 1
        except Exception as exc:  # noqa: BLE001 - recorded on the event
            _fail(conn, event, exc, options, result)


def _failures_step(conn: psycopg.Connection, consumer: Consumer, handler: Handler, worker: str, options: WorkerOptions,
                   result: WorkResult) -> int:
    events = claim_failures(conn, consumer.name, worker, options.batch, options.visibility)
    if events:
        result.batches += 1
        result.claimed += len(events)
        process_failures(conn, handler, events, options, result)
    return len(events)


# --- the loop --------------------------------------------------------------------------


def work(
    settings: Settings,
    handler_spec: str | None = None,
    options: WorkerOptions | None = None,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[WorkResult], None] | None = None,
    handler: Handler | None = None,
) -> WorkResult:
    """Run a worker for `options.consumer` until `stop` is set, `max_batches` is reached,
    or (with `once`) nothing is ready. The handler is `handler_spec`, else the options';
    code that holds a declared handler (the benchmarks) may pass it as `handler`.
    `on_batch(result)` is called after each committed batch. Registers the consumer on
    first use; waits as a standby while another worker holds it (with `once`: returns at
    once, having done nothing). Returns what it did. Refused (TrackschemaError, before
    anything is registered) on a Citus database whose entity_events is distributed."""
    options = options or WorkerOptions()
    if handler is not None:
        if not getattr(handler, HANDLER_MARK, False):
            raise TrackschemaError(f"handler {handler!r} is not declared for handling events: decorate it with @event_handler")
        handler_spec = handler_spec or f"{handler.__module__}:{handler.__qualname__}"
    else:
        handler_spec = handler_spec or options.handler
        handler = load_handler(handler_spec)
    stop = stop or threading.Event()
    name = options.name or default_worker_name()
    result = WorkResult(worker=name, handler=handler_spec, consumer=options.consumer)
    started = time.monotonic()
    with connect(settings.require_url(), application_name=f"trackschema-queue-worker:{name}"[:63]) as conn:
        refuse_on_distributed_outbox(conn, "queue work")
        consumer = register_on(conn, options.consumer, handler_spec, options.max_attempts)
        if not _own(conn, consumer, options, stop, result):
            result.seconds = time.monotonic() - started
            return result
        while not stop.is_set():
            if options.max_batches is not None and result.batches >= options.max_batches:
                break
            busy = _failures_step(conn, consumer, handler, name, options, result)
            if options.max_batches is None or result.batches < options.max_batches:
                busy += _window_step(conn, consumer, handler, options, result, stop, on_batch, started)
            result.seconds = time.monotonic() - started
            if not busy:
                if options.once:
                    break
                stop.wait(options.idle_sleep)
    result.seconds = time.monotonic() - started
    return result
