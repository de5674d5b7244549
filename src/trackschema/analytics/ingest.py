"""Batch ingestion: one `analytics_ingest(batch)` call per batch.

A batch is the seed's `POST /api/analytics/ingest` body,
`{"events": [{"type": "session"|"page_view"|"click", "data": {...}}, ...]}`. The SQL function
validates every event, records and reports the invalid ones, and lands the valid rest
set-based (see `sql/functions/analytics_ingest.v1.sql` for the fields it reads).

`ingest_source` reads JSON lines, one batch per line, from a file or stdin, and sends each
line in its own transaction (autocommit): a failing batch never takes others with it. The
server parses the JSON; a line it cannot parse is sent again as a JSON string, so the
function records it as a malformed batch and nothing read is lost.
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

from trackschema.runtime.db import connect
from trackschema.errors import TrackschemaError
from trackschema.operations.inputs import Count, Flag, InputError
from trackschema.operations.options import Options, option
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
    seconds: float = 0.0
    rejects: list[Reject] = field(default_factory=list)

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.events += result.events
        self.accepted += result.accepted
        self.rejected += result.rejected
        self.sessions_new += result.sessions_new
        self.sessions_updated += result.sessions_updated
        self.page_views += result.page_views
        self.clicks += result.clicks
        room = KEEP_REJECTS - len(self.rejects)
        if room > 0:
            self.rejects.extend(result.rejects[:room])

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
                 on_progress: ProgressCallback | None = None) -> IngestSummary:
    """Ingest numbered raw lines into `summary`; blank lines are skipped."""
    started = time.monotonic()
    for number, raw in lines:
        summary.lines += 1
        text = raw.decode("utf-8", errors="replace").strip()
        if text:
            summary.add(ingest_batch(conn, text, line=number))
        if on_progress:
            on_progress(len(raw), summary)
    summary.seconds += time.monotonic() - started
    return summary


def _first_batch(source: str, lines: Iterator[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The lines up to the first non-blank one, which must be a JSON object: a source whose
    first batch is not JSON (a CSV, a binary file, the wrong file) is refused before
    anything is sent. Later lines that are not JSON are recorded as rejects."""
    taken: list[tuple[int, bytes]] = []
    for number, raw in lines:
        taken.append((number, raw))
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{source} is not a file of JSON lines: line {number} is not JSON ({str(exc)[:80]}); "
                             "nothing was ingested") from None
        if not isinstance(parsed, dict):
            raise InputError(f"{source} is not a file of JSON batches: line {number} is a JSON {type(parsed).__name__}, "
                             'not an object like {"events": [...]}; nothing was ingested')
        break
    return taken


def ingest_source(settings: Settings, source: str, on_progress: ProgressCallback | None = None) -> IngestSummary:
    """Ingest a file of JSON lines (or `-` for stdin), one batch per line, one transaction each."""
    handle = _open_source(source)
    summary = IngestSummary(source="stdin" if source == "-" else source)
    try:
        lines = enumerate(handle, start=1)
        first = _first_batch(summary.source, lines)
        with connect(settings.require_url(), application_name="trackschema-ingest") as conn:
            ingest_lines(conn, itertools.chain(first, lines), summary, on_progress)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    return summary
