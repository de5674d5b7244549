"""The streaming ingest: one pass over a source, per batch one COPY, one check, one landing.

The client does little: a reader thread reads the source line by line (a line longer than
`MAX_LINE_BYTES` is skipped over in chunks, never held whole, and refused), and cuts the
lines into batches of about `batch_events` events (counted as `"type"` keys: cheap, and only
used to size batches). Per batch, in one transaction on one connection:

1. `COPY pg_temp.analytics_ingest_lines (line, body, reason) FROM STDIN (FORMAT BINARY)`:
   the raw lines;
2. `SELECT analytics_ingest_check()`: the server parses the lines and checks every event
   set-based (analytics_ingest's checks and reasons), records every refusal and stages the
   accepted events, typed, with their content ids (sql/functions/analytics_ingest_check.v1.sql);
3. `SELECT analytics_ingest_land()`: one INSERT ... SELECT per table from the staged rows,
   sessions counted once per session, duplicates of stored events refused
   (sql/functions/analytics_ingest_land.v1.sql); then COMMIT.

Two connections ("lanes") take the batches in turn: while one lands batch k, the other
COPYs and checks batch k+1 (steps 1-2 take no row lock), so the server's second core reads
JSON while the first one writes. The landings (step 3) run one at a time, in batch order: a
lane waits for its turn between steps 2 and 3, holding only its transaction open. At most
one batch per lane waits between the reader and the lanes: memory stays bounded whatever the
size of the source.

Commits: one per batch. A batch the server refuses with a data or integrity error (a case
the checks missed) is sent again line by line, so one bad line cannot take the others with
it; a line refused alone is recorded as a refused line with the server's message. Other
errors (connection, timeouts) stop the run: the batches committed so far stay.
"""

from __future__ import annotations

import json
import queue
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import psycopg
from psycopg import sql

# A batch holds at most 10,000 events of at most 4096 bytes (analytics_ingest's limits): a line
# longer than this cannot be a batch that could be taken whole, and is refused unread.
MAX_LINE_BYTES = 48 * 1024 * 1024
LINE_HEAD_CHARS = 2048  # what is recorded of a line refused unread
CHUNK = 1024 * 1024
SWITCH_INTERVAL = 0.0005  # s: a lane waiting for the GIL gets it this soon while the reader works
LINES = sql.Identifier("pg_temp", "analytics_ingest_lines")
COPY_LINES = sql.SQL("COPY {} (line, body, reason) FROM STDIN (FORMAT BINARY)").format(LINES)

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_ROW = struct.Struct(">hiii")  # 3 fields; line: length 4, value; body length
_LEN = struct.Struct(">i")
_NULL = b"\xff\xff\xff\xff"


@dataclass(frozen=True)
class SourceLine:
    """One line of the source: its number, its bytes (None when over the limit: `head`
    holds its start), its size and whether the source ends inside it."""

    number: int
    raw: bytes | None
    nbytes: int
    truncated: bool
    head: bytes = b""


def read_source(handle: IO[bytes], *, start: int = 1, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[SourceLine]:
    """The lines of `handle`, one at a time, each read with a bounded buffer."""
    number = start - 1
    while True:
        raw = handle.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if raw.endswith(b"\n"):
            yield SourceLine(number, raw, len(raw), False)
            continue
        if len(raw) <= max_line_bytes:
            yield SourceLine(number, raw, len(raw), True)  # the last line, without its newline
            continue
        nbytes, head, ended = len(raw), raw[: LINE_HEAD_CHARS * 4], False
        while not ended:
            rest = handle.readline(CHUNK)
            nbytes += len(rest)
            ended = not rest or rest.endswith(b"\n")
        yield SourceLine(number, None, nbytes, False, head)


def lines_from_pairs(lines: Iterable[tuple[int, bytes]]) -> Iterator[SourceLine]:
    """(number, raw line) pairs as `SourceLine`s (a last one without its newline is
    taken as truncated)."""
    for number, raw in lines:
        too_long = len(raw) > MAX_LINE_BYTES
        yield SourceLine(number, None if too_long else raw, len(raw), not raw.endswith(b"\n"), raw[: LINE_HEAD_CHARS * 4])


_WHITESPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.strip() takes off an ASCII line


@dataclass
class Batch:
    """Lines for one transaction: (number, text as UTF-8, reason) rows of the lines table,
    and what the client counted."""

    rows: list[tuple[int, bytes, str | None]] = field(default_factory=list)
    lines: int = 0  # every line read, blank ones included
    batches: int = 0  # non-blank lines
    events: int = 0  # estimated, for sizing only
    bytes_read: int = 0

    def add(self, line: SourceLine) -> None:
        """One line of the source. Text is taken as UTF-8 (an invalid byte reads as U+FFFD),
        without the whitespace around it; a blank line counts, and is not sent."""
        self.lines += 1
        self.bytes_read += line.nbytes
        if line.raw is None:
            self.batches += 1
            head = line.head.decode("utf-8", errors="replace").replace("\x00", "")[:LINE_HEAD_CHARS]
            self.rows.append((line.number, head.encode(),
                              f"the line is {line.nbytes:,} bytes, over the limit of {MAX_LINE_BYTES:,} "
                              "(10000 events of at most 4096 bytes): not read as a batch"))
            return
        body = line.raw.strip(_WHITESPACE)
        if not body.isascii():
            body = body.decode("utf-8", errors="replace").strip().encode()
        if not body:
            return
        self.batches += 1
        if b"\x00" in body:  # PostgreSQL text cannot hold it, and JSON never has it unescaped
            head = body.replace(b"\x00", b"").decode("utf-8", errors="replace")[:LINE_HEAD_CHARS]
            self.rows.append((line.number, head.encode(), "not valid JSON: the line holds a NUL byte (0x00)"))
            return
        if line.truncated:  # the last line, without its newline: say so if it is cut short
            try:
                json.loads(body)
            except ValueError as exc:
                self.rows.append((line.number, body, _cut(f"not valid JSON, and the source ends inside this line (truncated?): {exc}")))
                return
        self.events += body.count(b'"type"')
        self.rows.append((line.number, body, None))

    def payload(self, rows: list[tuple[int, bytes, str | None]] | None = None) -> bytes:
        """The binary COPY data of `rows` (default: all)."""
        parts = [_SIGNATURE]
        for number, body, reason in self.rows if rows is None else rows:
            parts.append(_ROW.pack(3, 4, number, len(body)))
            parts.append(body)
            if reason is None:
                parts.append(_NULL)
            else:
                encoded = reason.encode()
                parts.append(_LEN.pack(len(encoded)) + encoded)
        parts.append(_TRAILER)
        return b"".join(parts)


@dataclass
class Landed:
    """What the server did with one batch (`analytics_ingest_check()` and
    `analytics_ingest_land()` together)."""

    events: int = 0
    accepted: int = 0
    sessions_new: int = 0
    sessions_updated: int = 0
    page_views: int = 0
    clicks: int = 0
    duplicates: int = 0
    recorded: int = 0
    refused: tuple[tuple[int, int | None, str], ...] = ()

    @classmethod
    def from_json(cls, checked: dict[str, Any], landed: dict[str, Any]) -> "Landed":
        refused = [(int(r["line"]), r.get("index"), str(r["reason"])) for r in [*checked["refused"], *landed["refused"]]]
        return cls(
            events=int(checked["events"]), accepted=int(landed["accepted"]), sessions_new=int(landed["sessions_new"]),
            sessions_updated=int(landed["sessions_updated"]), page_views=int(landed["page_views"]),
            clicks=int(landed["clicks"]), duplicates=int(landed["duplicates"]),
            recorded=int(checked["recorded"]) + int(landed["duplicates"]),
            refused=tuple(sorted(refused, key=_position)),
        )

    def __add__(self, other: "Landed") -> "Landed":
        return Landed(
            self.events + other.events, self.accepted + other.accepted, self.sessions_new + other.sessions_new,
            self.sessions_updated + other.sessions_updated, self.page_views + other.page_views,
            self.clicks + other.clicks, self.duplicates + other.duplicates, self.recorded + other.recorded,
            tuple(sorted(self.refused + other.refused, key=_position)),
        )


def _position(refusal: tuple[int, int | None, str]) -> tuple[int, int]:
    return refusal[0], -1 if refusal[1] is None else refusal[1]


BatchDone = Callable[[Batch, Landed], None]


def batches(lines: Iterable[SourceLine], batch_events: int) -> Iterator[Batch]:
    """`lines` cut into batches of whole lines, each closed once it holds about
    `batch_events` events (or as many lines); the last one may hold blank lines only."""
    batch = Batch()
    for source_line in lines:
        batch.add(source_line)
        if batch.events >= batch_events or len(batch.rows) >= batch_events:
            yield batch
            batch = Batch()
    if batch.lines:
        yield batch


def prepare(conn: psycopg.Connection) -> None:
    """Make this session's tables of the streaming ingest (idempotent; commits when `conn`
    is autocommit)."""
    conn.execute("SELECT analytics_ingest_prepare()")


def land(conn: psycopg.Connection, payload: bytes, my_turn: Callable[[], None] | None = None) -> Landed:
    """One batch in one transaction (`conn` must be autocommit): COPY the lines, check them,
    wait for `my_turn()` (the other lane's landing), land them, commit."""
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(COPY_LINES) as copy:
            copy.write(payload)
        checked = cur.execute("SELECT analytics_ingest_check()").fetchone()
        if my_turn is not None:
            my_turn()
        landed = cur.execute("SELECT analytics_ingest_land()").fetchone()
    assert checked is not None and landed is not None
    return Landed.from_json(checked[0], landed[0])


def _land_line_by_line(conn: psycopg.Connection, batch: Batch) -> Landed:
    """After the server refused a whole batch: each line alone; a line refused again is
    recorded as refused with the server's message and its start."""
    total = Landed()
    for number, body, reason in batch.rows:
        try:
            total = total + land(conn, batch.payload([(number, body, reason)]))
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            head = body.decode("utf-8", errors="replace")[:LINE_HEAD_CHARS].encode()
            total = total + land(conn, batch.payload([(number, head, f"the server refused this line: {_message(exc)}")]))
    return total


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    text = getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]
    return text if len(text) <= 200 else text[:197] + "..."


def second_lane(conn: psycopg.Connection) -> psycopg.Connection:
    """Another autocommit connection to the same database as `conn`, as the same user."""
    return psycopg.connect(conn.info.dsn, password=conn.info.password or None, autocommit=True,
                           application_name="trackschema-ingest")


class _Stopped(Exception):
    """Another thread of the stream failed: this lane gives its batch up (rolled back)."""


_DONE = object()


def stream(conns: list[psycopg.Connection], lines: Iterable[SourceLine], *, batch_events: int,
           on_batch: BatchDone) -> None:
    """Read `lines` in a thread and land each batch as it is ready, on `conns` (autocommit
    connections to one database) in turn, as the module docstring says. `on_batch(batch,
    landed)` after each commit, in batch order. An error of any thread stops all and is
    raised here; the batches committed before stay."""
    for conn in conns:
        prepare(conn)
    ready: queue.Queue[object] = queue.Queue(maxsize=len(conns))
    stop = threading.Event()
    failure: list[BaseException] = []
    taking = threading.Lock()
    turn = threading.Condition()
    counts = {"taken": 0, "landed": 0}

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches(lines, batch_events):
                if not put(batch):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
            stop.set()
        put(_DONE)

    def wait_turn(seq: int) -> None:
        with turn:
            while counts["landed"] != seq:
                if stop.is_set():
                    raise _Stopped()
                turn.wait(0.1)

    def lane(conn: psycopg.Connection) -> None:
        try:
            while not stop.is_set():
                with taking:
                    item = ready.get()
                    if item is _DONE:
                        put(_DONE)  # for the other lanes
                        return
                    seq = counts["taken"]
                    counts["taken"] += 1
                assert isinstance(item, Batch)
                if not item.rows:
                    landed = Landed()
                    wait_turn(seq)
                else:
                    try:
                        landed = land(conn, item.payload(), lambda seq=seq: wait_turn(seq))
                    except (psycopg.errors.DataError, psycopg.errors.IntegrityError):
                        wait_turn(seq)
                        landed = _land_line_by_line(conn, item)
                with turn:
                    on_batch(item, landed)
                    counts["landed"] += 1
                    turn.notify_all()
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
            stop.set()

    reader = threading.Thread(target=read, name="trackschema-ingest-reader", daemon=True)
    others = [threading.Thread(target=lane, args=(c,), name=f"trackschema-ingest-lane-{i}", daemon=True)
              for i, c in enumerate(conns[1:], start=1)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        reader.start()
        for t in others:
            t.start()
        lane(conns[0])
        for t in others:
            t.join()
    finally:
        stop.set()
        for t in others:
            t.join(timeout=30)
        reader.join(timeout=5)
        sys.setswitchinterval(switch)
    if failure:
        raise failure[0]
