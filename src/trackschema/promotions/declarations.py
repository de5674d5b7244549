"""The JSONB → column promotions, declared once.

Each `Promotion` names a JSON key of a table's JSONB column and the typed column it is
promoted to, with what makes a value promotable (allowed values, or a referenced table)
and the index and constraint the validate step adds. The backfill engine, the progress
and rejects commands and the status page read these declarations; the released revisions
0020–0023 read a frozen copy (`released_2026_11`) so that an edit here cannot change them.

Released declarations describe what released revisions created: never change one in
place (the backfill would then write values the database's constraints refuse, status
would look for constraints that do not exist). A new promotion (or a changed rule) is a
new declaration plus new revisions. Tests check that every released declaration is still
here unchanged and that the installed dual-write trigger agrees with every declaration.

Every promoted table needs a uuid primary key `id`: rejects are recorded by row id.
"""

from __future__ import annotations

from dataclasses import dataclass

from trackschema.errors import TrackschemaError


@dataclass(frozen=True)
class Reference:
    """A foreign key from the promoted column: `table(column) ON DELETE <on_delete>`."""

    table: str
    column: str = "id"
    on_delete: str = "SET NULL"


@dataclass(frozen=True)
class Promotion:
    """`table.json_column ->> json_key` promoted to `table.column` of type `sql_type`.

    `sql_type` is `text` (optionally restricted to `allowed`) or `uuid` (optionally a
    `reference` to another table's key). Index and constraint names are fixed here so
    revisions, status and tests agree on them.
    """

    name: str
    table: str
    json_column: str
    json_key: str
    column: str
    sql_type: str
    allowed: tuple[str, ...] | None = None
    reference: Reference | None = None
    index: str = ""
    description: str = ""

    @property
    def check_constraint(self) -> str | None:
        """The CHECK on allowed values (None when any value of the type is allowed)."""
        return f"{self.table}_{self.column}_check" if self.allowed else None

    @property
    def foreign_key(self) -> str | None:
        return f"{self.table}_{self.column}_fkey" if self.reference else None

    @property
    def in_step_constraint(self) -> str:
        """The CHECK the switch revision adds: the column equals the promoted JSON value."""
        return f"{self.table}_{self.column}_in_step"

    @property
    def source(self) -> str:
        """`metadata.source`: how the JSON side is shown to people."""
        return f"{self.json_column}.{self.json_key}"


CONTEXT_EVENTS_TRIGGER = "context_events_promote_metadata"

PROMOTIONS: tuple[Promotion, ...] = (
    Promotion(
        name="source_type",
        table="context_events",
        json_column="metadata",
        json_key="source",
        column="source_type",
        sql_type="text",
        allowed=("guardrails", "trip", "planner"),
        index="idx_context_events_source_type",
        description="where the event came from (seed 004, Proposal 1)",
    ),
    Promotion(
        name="source_roadmap_item_id",
        table="context_events",
        json_column="metadata",
        json_key="roadmap_item_id",
        column="source_roadmap_item_id",
        sql_type="uuid",
        reference=Reference("roadmap_items", "id", "SET NULL"),
        index="idx_context_events_source_roadmap_item",
        description="the roadmap item a Guardrails event mirrors (seed 004, Proposal 2)",
    ),
    Promotion(
        name="source_itinerary_item_id",
        table="context_events",
        json_column="metadata",
        json_key="itinerary_item_id",
        column="source_itinerary_item_id",
        sql_type="uuid",
        index="idx_context_events_source_itinerary_item",
        description="the trip itinerary item an event mirrors; no foreign key (seed 004, Proposal 3)",
    ),
)

# The dual-write trigger (function and trigger share the name) of each promoted table.
DUAL_WRITE_TRIGGERS: dict[str, str] = {"context_events": CONTEXT_EVENTS_TRIGGER}


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


def by_table(promotions: list[Promotion]) -> dict[str, list[Promotion]]:
    """Promotions grouped by table, tables in first-declared order."""
    grouped: dict[str, list[Promotion]] = {}
    for p in promotions:
        grouped.setdefault(p.table, []).append(p)
    return grouped
