"""Batch ingestion: analytics batches, one `{"events": [...]}` per line, landed set-based.

A batch is the seed's `POST /api/analytics/ingest` body,
`{"events": [{"type": "session"|"page_view"|"click", "data": {...}}, ...]}`.

Two ways in:
- `ingest_batch`: one `analytics_ingest(batch)` call (`sql/functions/analytics_ingest.v2.sql`),
  the API an application calls per request: the server parses, checks and lands the batch.
- `ingest_source` / `ingest_lines` (`trackschema ingest FILE|-`): the streaming ingest
  (`ingest_stream`): one pass over the source; this process reads and checks each event
  (`ingest_events`, the same checks and reasons as analytics_ingest), and every batch of
  about `--batch-events` events goes to the server in one transaction, one COPY into a
  staging table and one `analytics_ingest_staged()` call that lands it with one
  INSERT ... SELECT per table and records every refused event. Lines are still batches:
  each line's events are checked as a whole (a line that is not JSON is one refusal), and a
  batch of several lines shares one transaction. Page views and clicks sent again (the same
  content) are refused as duplicates. See docs/design.md#ingest.

A source whose first batch is not a JSON object is refused before anything is sent.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import psycopg

from trackschema.analytics import ingest_stream
from trackschema.analytics.ingest_stream import Batch, Landed, SourceLine
from trackschema.errors import TrackschemaError
from trackschema.operations.inputs import Count, Flag, InputError
from trackschema.operations.options import Options, option
from trackschema.runtime.db import connect
from trackschema.runtime.settings import Settings

# SQLSTATEs of JSON text the server cannot turn into jsonb: invalid_text_representation
# (syntax) and untranslatable_character (\u0000).
BAD_JSON_SQLSTATES = frozenset({"22P02", "22P05"})
KEEP_REJECTS = 100  # rejects kept in a summary for display; all are in the rejects table


@dataclass(frozen=True)
class IngestOptions(Options):
    """`ingest`: how the summary is shown and gated (the source is an argument)."""

    operation = "ingest"
    show_rejects: int = option(Count(0, KEEP_REJECTS), 10, "How many rejected events to list.")
    fail_on_reject: bool = option(Flag(), False, "Exit 1 when any event was rejected.")
    batch_events: int = option(Count(100, 100_000), 5000,
                               "Events per transaction (whole lines: a longer line makes a bigger one).")


@dataclass(frozen=True)
class Reject:
    """One refused event (`index` in its batch's events array) or a whole line (`index` None)."""

    line: int | None
    index: int | None
    reason: str


@dataclass(frozen=True)
class BatchResult:
    """What `analytics_ingest` did with one batch."""

    batch_id: str
    events: int
    accepted: int
    sessions_new: int
    sessions_updated: int
    page_views: int
    clicks: int
    rejects: list[Reject]

    @classmethod
    def from_json(cls, data: dict[str, Any], line: int | None = None) -> "BatchResult":
        return cls(
            batch_id=str(data["batch_id"]), events=int(data["events"]), accepted=int(data["accepted"]),
            sessions_new=int(data["sessions_new"]), sessions_updated=int(data["sessions_updated"]),
            page_views=int(data["page_views"]), clicks=int(data["clicks"]),
            rejects=[Reject(line, r.get("index"), str(r["reason"])) for r in data["rejected"]],
        )

    @property
    def rejected(self) -> int:
        return len(self.rejects)


@dataclass
class IngestSummary:
    """Totals over every batch of one `ingest_source` run."""

    source: str
    lines: int = 0
    batches: int = 0
    events: int = 0
    accepted: int = 0
    rejected: int = 0
    sessions_new: int = 0
    sessions_updated: int = 0
    page_views: int = 0
    clicks: int = 0
    duplicates: int = 0
    transactions: int = 0
    seconds: float = 0.0
    rejects: list[Reject] = field(default_factory=list)

    def add_staged(self, batch: Batch, landed: Landed) -> None:
        """One committed batch of the streaming ingest: the lines the client read (`batch`)
        and what the server did with them (`landed`)."""
        self.transactions += 1
        self.lines += batch.lines
        self.batches += batch.batches
        self.events += landed.events
        self.accepted += landed.accepted
        self.rejected += landed.recorded
        self.duplicates += landed.duplicates
        self.sessions_new += landed.sessions_new
        self.sessions_updated += landed.sessions_updated
        self.page_views += landed.page_views
        self.clicks += landed.clicks
        room = KEEP_REJECTS - len(self.rejects)
        if room > 0:
            self.rejects.extend(Reject(line, index, reason) for line, index, reason in landed.refused[:room])

    @property
    def events_per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["events_per_second"] = round(self.events_per_second, 1)
        data["rejects_shown"] = len(self.rejects)
        return data


def ingest_batch(conn: psycopg.Connection, batch: str | dict[str, Any], *, line: int | None = None) -> BatchResult:
    """Send one batch (JSON text or a dict) to `analytics_ingest`; commits when `conn` is autocommit.

    JSON text the server cannot parse is recorded as a malformed batch (the text is kept
    in `trackschema.analytics_ingest_rejects`) and reported as one reject.
    """
    text = batch if isinstance(batch, str) else json.dumps(batch)
    try:
        row = conn.execute("SELECT analytics_ingest(%s::jsonb)", (text,)).fetchone()
    except psycopg.errors.DataError as exc:
        if exc.sqlstate not in BAD_JSON_SQLSTATES:
            raise
        if not conn.autocommit:
            raise TrackschemaError(f"line {line}: not valid JSON ({_first_line(exc)})") from exc
        row = conn.execute("SELECT analytics_ingest(to_jsonb(%s::text))", (text,)).fetchone()
        assert row is not None
        result = BatchResult.from_json(row[0], line)
        return BatchResult(**{**result.__dict__, "rejects": [Reject(line, None, f"not valid JSON: {_first_line(exc)}")]})
    assert row is not None
    return BatchResult.from_json(row[0], line)


REASON_CHARS = 200  # the server quotes the offending token: a 10 MB line must not come back whole


def _first_line(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    detail = getattr(diag, "message_detail", None)
    primary = getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]
    text = f"{primary}: {detail}" if detail else primary
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def _open_source(source: str) -> IO[bytes]:
    if source == "-":
        return sys.stdin.buffer
    try:
        return open(source, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise TrackschemaError(f"cannot read {source}: {exc.strerror} (give a file of JSON lines, or - for stdin)") from exc


def source_size(source: str) -> int | None:
    """Bytes to read from `source` (None for stdin), for a progress bar."""
    if source == "-":
        return None
    try:
        return os.path.getsize(source)
    except OSError as exc:
        raise TrackschemaError(f"cannot read {source}: {exc.strerror} (give a file of JSON lines, or - for stdin)") from exc


ProgressCallback = Callable[[int, IngestSummary], None]


def ingest_lines(conn: psycopg.Connection, lines: Iterable[tuple[int, bytes]], summary: IngestSummary,
                 on_progress: ProgressCallback | None = None, *, batch_events: int = 5000) -> IngestSummary:
    """Ingest numbered raw lines into `summary` through the streaming ingest on `conn`
    (autocommit: one transaction per batch of about `batch_events` events); blank lines are
    skipped. `on_progress(bytes, summary)` after each commit."""
    return _stream(conn, ingest_stream.lines_from_pairs(lines), summary, on_progress, batch_events)


def ingest_handle(conn: psycopg.Connection, handle: IO[bytes], summary: IngestSummary,
                  on_progress: ProgressCallback | None = None, *, batch_events: int = 5000) -> IngestSummary:
    """Ingest an open binary source of JSON lines on `conn` (autocommit), as `ingest_lines`;
    lines are read with a bounded buffer (`ingest_stream.read_source`)."""
    return _stream(conn, ingest_stream.read_source(handle), summary, on_progress, batch_events)


def _stream(conn: psycopg.Connection, lines: Iterable[SourceLine], summary: IngestSummary,
            on_progress: ProgressCallback | None, batch_events: int) -> IngestSummary:
    started = time.monotonic()

    def done(batch: Batch, landed: Landed) -> None:
        summary.add_staged(batch, landed)
        summary.seconds = time.monotonic() - started
        if on_progress:
            on_progress(batch.bytes_read, summary)

    second = ingest_stream.second_lane(conn)
    try:
        ingest_stream.stream([conn, second], lines, batch_events=batch_events, on_batch=done)
    finally:
        second.close()
        summary.seconds = time.monotonic() - started
    return summary


def _first_batch(source: str, lines: Iterator[SourceLine]) -> list[SourceLine]:
    """The lines up to the first non-blank one, which must be a JSON object: a source whose
    first batch is not JSON (a CSV, a binary file, the wrong file) is refused before
    anything is sent. Later lines that are not JSON are recorded as rejects."""
    taken: list[SourceLine] = []
    for line in lines:
        taken.append(line)
        if line.raw is None:
            raise InputError(f"{source} is not a file of JSON lines: line {line.number} is {line.nbytes:,} bytes long, "
                             f"over the limit of {ingest_stream.MAX_LINE_BYTES:,} for a batch; nothing was ingested")
        text = line.raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{source} is not a file of JSON lines: line {line.number} is not JSON ({str(exc)[:80]}); "
                             "nothing was ingested") from None
        if not isinstance(parsed, dict):
            raise InputError(f"{source} is not a file of JSON batches: line {line.number} is a JSON {type(parsed).__name__}, "
                             'not an object like {"events": [...]}; nothing was ingested')
        break
    return taken


def ingest_source(settings: Settings, source: str, on_progress: ProgressCallback | None = None,
                  options: IngestOptions | None = None) -> IngestSummary:
    """Ingest a file of JSON lines (or `-` for stdin) in one streaming pass, one transaction
    per batch of about `options.batch_events` events (see the module docstring)."""
    options = options or IngestOptions()
    handle = _open_source(source)
    summary = IngestSummary(source="stdin" if source == "-" else source)
    try:
        lines = ingest_stream.read_source(handle)
        first = _first_batch(summary.source, lines)
        with connect(settings.require_url(), application_name="trackschema-ingest") as conn:
            _stream(conn, itertools.chain(first, lines), summary, on_progress, options.batch_events)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    return summary
