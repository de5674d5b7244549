"""Each promotion's stage, for `trackschema status`.

Derived from the catalog and the data, never from a stored flag that could drift:

| stage       | what makes it so                                                        |
|-------------|--------------------------------------------------------------------------|
| absent      | the column does not exist (expand not applied)                           |
| expanded    | column and dual-write trigger exist; no backfill pass has started        |
| backfilling | as expanded, a pass has started, and rows are still to fill (percent)    |
| backfilled  | as expanded, and no row with the key lacks a value or a reject           |
| validated   | the CHECK / FOREIGN KEY (if declared) and the partial index are valid    |
| switched    | the in-step CHECK (column = key) is valid                                |
| contracted  | the column exists and the dual-write trigger does not                    |

Counts (and the NULL rate) come from the data, as `backfill progress` counts them, while
the table has at most STATUS_SCAN_ROWS rows; beyond that `status` stays quick: no counts,
and during the backfill the percentage of pages done from the checkpoint (it says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from trackschema.promotions.declarations import DUAL_WRITE_TRIGGERS, PROMOTIONS, Promotion
from trackschema.promotions.progress import PromotionProgress, measure

STATUS_SCAN_ROWS = 2_000_000


@dataclass(frozen=True)
class PromotionStage:
    name: str
    table: str
    column: str
    source: str
    stage: str
    percent: float | None
    detail: str
    progress: PromotionProgress | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "table": self.table, "column": self.column, "source": self.source, "stage": self.stage,
            "percent": self.percent, "detail": self.detail,
            "progress": self.progress.to_dict() if self.progress else None,
        }


def _one(conn: psycopg.Connection, query: str, params: tuple[object, ...]) -> tuple | None:
    return conn.execute(query, params).fetchone()


def _constraint_valid(conn: psycopg.Connection, table: str, name: str | None) -> bool | None:
    """True/False when the constraint exists (valid or not), None when it does not."""
    if not name:
        return True
    row = _one(conn, "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s", (table, name))
    return None if row is None else bool(row[0])


def _small(conn: psycopg.Connection, table: str) -> bool:
    rows = _one(conn, "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass(%s)", (table,))
    return bool(rows) and rows[0] <= STATUS_SCAN_ROWS  # type: ignore[index]


def stages(conn: psycopg.Connection, promotions: list[Promotion] | None = None) -> list[PromotionStage]:
    promotions = list(promotions or PROMOTIONS)
    present = [p for p in promotions if _one(
        conn, "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped", (p.table, p.column))]
    counted = {m.name: m for m in measure(conn, [p for p in present if _small(conn, p.table)])}
    out: list[PromotionStage] = []
    for p in promotions:
        measured = counted.get(p.name)
        if p not in present:
            out.append(PromotionStage(p.name, p.table, p.column, p.source, "absent", None, "run `trackschema upgrade` (0020_promotion_expand)"))
            continue
        trigger = _one(conn, "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s", (p.table, DUAL_WRITE_TRIGGERS.get(p.table)))
        index = _one(conn, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (p.index,))
        type_ok = all(_constraint_valid(conn, p.table, c) for c in (p.check_constraint, p.foreign_key))
        validated = type_ok and bool(index and index[0])
        in_step = _constraint_valid(conn, p.table, p.in_step_constraint)
        if not trigger:
            detail = "dual-write removed: the columns are the written side" if validated else "dual-write trigger missing and not validated"
            out.append(PromotionStage(p.name, p.table, p.column, p.source, "contracted", _percent(measured), detail, measured))
        elif in_step:
            out.append(PromotionStage(p.name, p.table, p.column, p.source, "switched", _percent(measured),
                                      "column and key agree on every row (in-step CHECK valid)", measured))
        elif validated:
            out.append(PromotionStage(p.name, p.table, p.column, p.source, "validated", _percent(measured),
                                      "constraints and index valid: ready for switch", measured))
        else:
            out.append(_backfill_stage(conn, p, measured))
    return out


def _percent(measured: PromotionProgress | None) -> float | None:
    """Share of rows with the key that are promoted or rejected."""
    return None if measured is None else round(100.0 * (1.0 - measured.null_rate), 1)


def _backfill_stage(conn: psycopg.Connection, p: Promotion, measured: PromotionProgress | None) -> PromotionStage:
    checkpoint = _one(conn, "SELECT next_page, end_page, finished_at IS NOT NULL FROM trackschema.backfill_checkpoints WHERE promotion = %s", (p.name,))
    if measured is None:
        if checkpoint is None:
            return PromotionStage(p.name, p.table, p.column, p.source, "expanded", 0.0, "no backfill pass yet: run `trackschema backfill run`")
        next_page, end_page, finished = checkpoint
        percent = 100.0 if finished or end_page == 0 else round(100.0 * next_page / end_page, 1)
        stage = "backfilled" if finished else "backfilling"
        return PromotionStage(p.name, p.table, p.column, p.source, stage, percent,
                              "pages done per the backfill checkpoint (`trackschema backfill progress` counts rows)")
    percent = _percent(measured)
    if measured.unfilled == 0:
        return PromotionStage(p.name, p.table, p.column, p.source, "backfilled", 100.0, "every row with the key is promoted or rejected: ready for validate", measured)
    if checkpoint is None:
        return PromotionStage(p.name, p.table, p.column, p.source, "expanded", percent, "dual-write on; no backfill pass yet: run `trackschema backfill run`", measured)
    return PromotionStage(p.name, p.table, p.column, p.source, "backfilling", percent, f"{measured.unfilled} rows to go: `trackschema backfill run` resumes", measured)
