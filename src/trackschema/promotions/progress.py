"""NULL rates and rejects: `trackschema backfill progress` and `trackschema backfill rejects`.

Counted from the data (one scan per table for all its promotions), never from the
backfill's own bookkeeping:
- eligible: rows whose JSON has a value for the key (present and not JSON null);
- filled: eligible rows whose column is set;
- rejected: eligible rows with an empty column and a recorded reject;
- null_rate: eligible rows with an empty column and no reject, over eligible rows (0 when
  nothing is eligible). This is the rate the validate and switch revisions gate on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from trackschema.operations.inputs import Rate
from trackschema.promotions.options import REJECT_LIMIT, ProgressOptions, RejectsOptions  # noqa: F401 - declared apart, see there
from trackschema.runtime.db import connect, set_timeouts
from trackschema.errors import TrackschemaError
from trackschema.promotions import expressions as ex
from trackschema.promotions.declarations import Promotion, by_table, get, select
from trackschema.runtime.settings import Settings


@dataclass(frozen=True)
class PromotionProgress:
    name: str
    table: str
    column: str
    eligible: int
    filled: int
    rejected: int

    @property
    def unfilled(self) -> int:
        """Eligible rows with neither a value nor a reject: what a backfill still has to do."""
        return self.eligible - self.filled - self.rejected

    @property
    def null_rate(self) -> float:
        return self.unfilled / self.eligible if self.eligible else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "table": self.table, "column": self.column, "eligible": self.eligible,
            "filled": self.filled, "rejected": self.rejected, "null_rate": self.null_rate,
        }


@dataclass(frozen=True)
class Reject:
    promotion: str
    table: str
    row_id: str
    value: Any
    reason: str
    first_seen: datetime
    last_seen: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "promotion": self.promotion, "table": self.table, "row_id": self.row_id, "value": self.value,
            "reason": self.reason, "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat(),
        }


@dataclass(frozen=True)
class RejectList:
    promotion: str
    total: int
    rejects: list[Reject]

    def to_dict(self) -> dict[str, object]:
        return {"promotion": self.promotion, "total": self.total, "rejects": [r.to_dict() for r in self.rejects]}


class PromotionNotExpanded(TrackschemaError):
    """A promoted column is missing: the expand revision has not run."""


def progress(settings: Settings, names: list[str] | None = None) -> list[PromotionProgress]:
    """Progress of the named promotions (all when none)."""
    with connect(settings.require_url()) as conn:
        return measure(conn, select(names))


def measure(conn: psycopg.Connection, promotions: list[Promotion]) -> list[PromotionProgress]:
    """Count eligible/filled/rejected rows, one scan per table (no statement_timeout)."""
    _require_columns(conn, promotions)
    out: list[PromotionProgress] = []
    for table, ps in by_table(promotions).items():
        counts = sql.SQL(", ").join(
            sql.SQL("count(*) FILTER (WHERE {has}), count(*) FILTER (WHERE {has} AND {col} IS NOT NULL), "
                    "count(*) FILTER (WHERE {needs} AND {rejected})").format(
                has=ex.has_key(p), col=ex.column(p), needs=ex.needs_fill(p), rejected=ex.rejected(p))
            for p in ps
        )
        with conn.transaction(), conn.cursor() as cur:
            set_timeouts(cur, statement_timeout=0, local=True)  # counting may take long: no limit here
            row = cur.execute(sql.SQL("SELECT {} FROM {} t").format(counts, sql.Identifier(table))).fetchone()
        assert row is not None
        for i, p in enumerate(ps):
            out.append(PromotionProgress(p.name, p.table, p.column, *(int(v) for v in row[3 * i: 3 * i + 3])))
    return out


def _require_columns(conn: psycopg.Connection, promotions: list[Promotion]) -> None:
    for p in promotions:
        found = conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped", (p.table, p.column)
        ).fetchone()
        if not found:
            raise PromotionNotExpanded(
                f"{p.table}.{p.column} does not exist yet: run `trackschema upgrade 0020_promotion_expand` (or head) first"
            )


def rejects(settings: Settings, name: str, limit: int = 100) -> RejectList:
    """The live rejects of one promotion (rows that still have the key and an empty column),
    newest first, with the total count."""
    limit = REJECT_LIMIT.parse("--limit", limit)
    p = get(name)
    with connect(settings.require_url()) as conn:
        _require_columns(conn, [p])
        live = sql.SQL(
            "FROM trackschema.promotion_rejects r JOIN {table} t ON t.id = r.row_id WHERE r.promotion = {name} AND {needs}"
        ).format(table=sql.Identifier(p.table), name=sql.Literal(p.name), needs=ex.needs_fill(p))
        total = conn.execute(sql.SQL("SELECT count(*) {}").format(live)).fetchone()
        rows = conn.execute(
            sql.SQL("SELECT r.row_id::text, r.value, r.reason, r.first_seen, r.last_seen {} "
                    "ORDER BY r.last_seen DESC, r.row_id LIMIT {}").format(live, sql.Literal(limit))
        ).fetchall()
    return RejectList(p.name, int(total[0]) if total else 0, [Reject(p.name, p.table, *row) for row in rows])


def parse_rate(text: str) -> float:
    """A NULL-rate threshold: a fraction (`0.01`) or a percentage (`1%`)."""
    return Rate().parse("--fail-above", text)


def above(rows: list[PromotionProgress], rate: float) -> list[PromotionProgress]:
    """The promotions whose NULL rate is above `rate` (what `--fail-above` fails on)."""
    return [r for r in rows if r.null_rate > rate]
