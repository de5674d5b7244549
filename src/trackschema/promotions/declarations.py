"""The JSONB → column promotions, declared once.

Each `Promotion` names a JSON key of a table's JSONB column and the typed column it is
promoted to, with what makes a value promotable (allowed values, or a referenced table)
and the index and constraint the validate step adds. The backfill engine, the progress
and rejects commands and the status page read these declarations. The released ones, and
the classes, are those of the frozen module the released revisions 0020–0023 use
(`released_2026_11`, listed in alembic/released.sha256): they describe what those
revisions created and never change (the backfill would then write values the database's
constraints refuse, status would look for constraints that do not exist). A new
promotion (or a changed rule) is a new declaration appended here plus new revisions; a
test checks that the installed dual-write trigger agrees with every declaration.

Every promoted table needs a uuid primary key `id`: rejects are recorded by row id.
"""

from __future__ import annotations

from trackschema.errors import TrackschemaError
from trackschema.promotions.released_2026_11 import (
    CONTEXT_EVENTS_TRIGGER,
    DUAL_WRITE_TRIGGERS,
    Promotion,
    Reference,
    by_table,
)
from trackschema.promotions.released_2026_11 import PROMOTIONS as RELEASED_2026_11

__all__ = ["CONTEXT_EVENTS_TRIGGER", "DUAL_WRITE_TRIGGERS", "PROMOTIONS", "Promotion", "Reference", "UnknownPromotion",
           "by_table", "get", "select"]

# The released promotions come from the frozen module their revisions use, so the two
# cannot drift apart; a new promotion is appended here (with its revisions).
PROMOTIONS: tuple[Promotion, ...] = RELEASED_2026_11


class UnknownPromotion(TrackschemaError):
    """A promotion name that is not declared."""


def get(name: str) -> Promotion:
    """The promotion called `name` (its column name; `table.column` works too)."""
    for promotion in PROMOTIONS:
        if name in (promotion.name, f"{promotion.table}.{promotion.column}", promotion.json_key):
            return promotion
    known = ", ".join(p.name for p in PROMOTIONS)
    raise UnknownPromotion(f"unknown promotion {name!r}: choose one of {known} (see `trackschema backfill progress`)")


def select(names: list[str] | tuple[str, ...] | None) -> list[Promotion]:
    """The named promotions in declaration order (all of them when `names` is empty)."""
    if not names:
        return list(PROMOTIONS)
    chosen = {get(n).name for n in names}
    return [p for p in PROMOTIONS if p.name in chosen]

