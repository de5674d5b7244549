"""The event_queue worker and queue statistics.

A worker repeats: claim a batch (`event_queue_claim`, FOR UPDATE SKIP LOCKED, committed
at once so the lease is visible to the other workers), then process it in a second
transaction that

1. locks the batch's rows again and keeps only those still leased with its claim token
   (an event whose lease ran out may have been claimed by another worker meanwhile);
2. calls the handler with them (`handler(conn, events)`; the handler writes with `conn`
   inside this transaction and must neither commit nor roll back);
3. deletes them with `event_queue_complete`, which must find every one; otherwise the
   transaction rolls back and the handler's writes with it.

So an event's effects are committed exactly once, together with its removal: a worker
killed anywhere loses its open transaction, and its events come back when their lease
(the visibility timeout) runs out.

When the handler raises, the batch rolls back and its events are retried one per
transaction, so one bad event cannot hold back the others; each event that fails alone
is given back with `event_queue_fail` (exponential backoff, then 'dead' with the error
after max_attempts). Connection errors are not handler failures: they end the worker.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from trackschema.runtime.db import connect
from trackschema.errors import TrackschemaError
from trackschema.operations.inputs import Count, Duration, Flag, InputError, Text
from trackschema.operations.options import Options, option
from trackschema.runtime.settings import Settings

log = logging.getLogger("trackschema.queue")

DEFAULT_HANDLER = "trackschema.tracking.handlers:propagate"
STATUSES = ("pending", "processing", "dead")


@dataclass(frozen=True)
class QueueEvent:
    """One claimed event, as the handler sees it."""

    id: int
    event_type: str
    payload: dict[str, Any]
    entity_event_id: UUID | None
    attempts: int
    max_attempts: int
    created_at: datetime
    claim_token: UUID


Handler = Callable[[psycopg.Connection, list[QueueEvent]], None]


@dataclass(frozen=True)
class DeadEvent:
    id: int
    event_type: str
    attempts: int
    failed_at: datetime | None
    last_error: str | None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["failed_at"] = self.failed_at.isoformat() if self.failed_at else None
        return data


@dataclass(frozen=True)
class QueueStats:
    """Queue depth by status; `oldest_pending_seconds` is the age of the oldest event not
    yet done (pending or processing), None when there is none."""

    by_status: dict[str, int]
    oldest_pending_seconds: float | None
    ready: int
    expired_leases: int
    recent_dead: list[DeadEvent] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "by_status": self.by_status,
            "oldest_pending_seconds": self.oldest_pending_seconds,
            "ready": self.ready,
            "expired_leases": self.expired_leases,
            "recent_dead": [d.to_dict() for d in self.recent_dead],
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
class WorkerOptions(Options):
    """How a worker claims and retries.

    `visibility`: seconds a claimed event stays leased (it must exceed a batch's handling
    time). `base_delay`/`max_delay`: backoff after a failure, doubled per attempt.
    `once`: stop when nothing is ready instead of waiting for new events.
    """

    operation = "queue work"
    batch: int = option(Count(1, 100_000), 100, "Events claimed per batch.")
    visibility: float = option(Duration(minimum=1, maximum=86400), 30.0, "Lease of a claimed batch.")
    base_delay: float = option(Duration(maximum=86400, zero_allowed=True), 1.0, "Backoff after the first failure.")
    max_delay: float = option(Duration(maximum=30 * 86400, zero_allowed=True), 3600.0, "Longest backoff.")
    idle_sleep: float = option(Duration(minimum=0.01, maximum=3600), 1.0, "Wait between polls of an empty queue.")
    once: bool = option(Flag(), False, "Stop when nothing is ready.")
    max_batches: int | None = option(Count(1, 100_000_000), None, "Stop after this many batches.")
    name: str | None = option(Text(max_length=60), None, "Worker name recorded on claimed events.")
    handler: str = option(HandlerSpec(), DEFAULT_HANDLER,
                          "module:function declared with @event_handler, called with (connection, events) in the batch transaction.")


@dataclass
class WorkResult:
    """What one worker run did."""

    worker: str
    handler: str
    batches: int = 0
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["events_per_second"] = round(self.events_per_second, 1)
        return data


class LeaseLost(Exception):
    """Another worker took over some events of this batch (their lease had run out)."""


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


# --- statistics ------------------------------------------------------------------------


def stats_on(conn: psycopg.Connection, *, dead_limit: int = 5) -> QueueStats:
    """Counts by status, ready events, expired leases and the most recent dead events."""
    counts = dict(conn.execute("SELECT status, count(*) FROM event_queue GROUP BY status").fetchall())
    row = conn.execute(
        """SELECT extract(epoch FROM now() - min(created_at) FILTER (WHERE status IN ('pending', 'processing')))::float8,
                  count(*) FILTER (WHERE status IN ('pending', 'processing') AND available_at <= now() AND attempts < max_attempts),
                  count(*) FILTER (WHERE status = 'processing' AND available_at <= now())
             FROM event_queue"""
    ).fetchone()
    assert row is not None
    dead = conn.execute(
        """SELECT id, event_type, attempts, failed_at, last_error FROM event_queue
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
    with connect(settings.require_url(), application_name="trackschema-queue-stats") as conn:
        return stats_on(conn)


# --- claiming and finishing ------------------------------------------------------------


def claim(conn: psycopg.Connection, worker: str, batch: int, visibility: float) -> list[QueueEvent]:
    """Lease up to `batch` ready events (own transaction, committed on return)."""
    with conn.transaction():
        rows = conn.execute(
            """SELECT id, event_type, payload, entity_event_id, attempts, max_attempts, created_at, claim_token
                 FROM event_queue_claim(%s, %s, %s)""",
            (worker, batch, timedelta(seconds=visibility)),
        ).fetchall()
    return [QueueEvent(*row) for row in rows]


def _lock_owned(conn: psycopg.Connection, events: list[QueueEvent]) -> list[QueueEvent]:
    rows = conn.execute(
        "SELECT id FROM event_queue WHERE id = ANY (%s) AND claim_token = %s FOR UPDATE",
        ([e.id for e in events], events[0].claim_token),
    ).fetchall()
    owned = {r[0] for r in rows}
    return [e for e in events if e.id in owned]


def _complete(conn: psycopg.Connection, events: list[QueueEvent]) -> None:
    done = conn.execute("SELECT event_queue_complete(%s, %s)", ([e.id for e in events], events[0].claim_token)).fetchone()
    if done is None or done[0] != len(events):
        raise LeaseLost(f"completed {done[0] if done else 0} of {len(events)} events")


def _fail(conn: psycopg.Connection, event: QueueEvent, error: str, options: WorkerOptions) -> str | None:
    row = conn.execute(
        "SELECT event_queue_fail(%s, %s, %s, %s, %s)",
        (event.id, event.claim_token, error, timedelta(seconds=options.base_delay), timedelta(seconds=options.max_delay)),
    ).fetchone()
    return row[0] if row else None


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def process_batch(conn: psycopg.Connection, handler: Handler, events: list[QueueEvent], options: WorkerOptions, result: WorkResult) -> None:
    """Handle one claimed batch as the module docstring describes; counts go to `result`."""
    try:
        with conn.transaction():
            mine = _lock_owned(conn, events)
            if mine:
                handler(conn, mine)
                _complete(conn, mine)
        result.completed += len(mine)
        result.lost += len(events) - len(mine)
        return
    except psycopg.OperationalError:
        raise
    except LeaseLost as exc:
        log.warning("batch rolled back, lease lost (%s); retrying its events one by one", exc)
    except Exception as exc:  # noqa: BLE001 - the handler's failure; isolated below
        if len(events) == 1:
            _record_failure(conn, events[0], exc, options, result)
            return
        log.info("batch of %d failed (%s); retrying its events one by one", len(events), _error_text(exc))
    for event in events:
        try:
            with conn.transaction():
                mine = _lock_owned(conn, [event])
                if not mine:
                    result.lost += 1
                    continue
                handler(conn, mine)
                _complete(conn, mine)
            result.completed += 1
        except psycopg.OperationalError:
            raise
        except LeaseLost:
            result.lost += 1
        except Exception as exc:  # noqa: BLE001 - recorded on the event
            _record_failure(conn, event, exc, options, result)


def _record_failure(conn: psycopg.Connection, event: QueueEvent, exc: BaseException, options: WorkerOptions, result: WorkResult) -> None:
    status = _fail(conn, event, _error_text(exc), options)
    if status is None:
        result.lost += 1
        return
    result.failed += 1
    if status == "dead":
        result.dead += 1
        log.warning("event %s is dead after %d attempts: %s", event.id, event.attempts, _error_text(exc))


# --- the loop --------------------------------------------------------------------------


def work(
    settings: Settings,
    handler_spec: str | None = None,
    options: WorkerOptions | None = None,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[WorkResult], None] | None = None,
) -> WorkResult:
    """Run a worker until `stop` is set, `max_batches` is reached, or (with `once`)
    nothing is ready. Returns what it did. The handler is `handler_spec`, else the
    options' handler."""
    options = options or WorkerOptions()
    handler_spec = handler_spec or options.handler
    handler = load_handler(handler_spec)
    stop = stop or threading.Event()
    name = options.name or default_worker_name()
    result = WorkResult(worker=name, handler=handler_spec)
    started = time.monotonic()
    with connect(settings.require_url(), application_name=f"trackschema-queue-worker:{name}"[:63]) as conn:
        while not stop.is_set():
            if options.max_batches is not None and result.batches >= options.max_batches:
                break
            events = claim(conn, name, options.batch, options.visibility)
            if not events:
                if options.once:
                    break
                stop.wait(options.idle_sleep)
                continue
            result.batches += 1
            result.claimed += len(events)
            process_batch(conn, handler, events, options, result)
            result.seconds = time.monotonic() - started
            if on_batch:
                on_batch(result)
    result.seconds = time.monotonic() - started
    return result
