"""The Citus layout of the schema at revision 0100_citus_distribution, as data.

One `Placement` per table of the history (partitions follow their parent): distributed
(a distribution column, and the table whose co-location group it joins), reference (a
copy on every node), or local (a plain table on the coordinator). The entries are in the
order revision 0100 applies them (reference tables, then each co-location group's first
table before the others); its downgrade undoes them in reverse.

This declaration is frozen for revision 0100: a later revision that moves a table declares
its own entries (a new module or a new tuple here) and never edits `LAYOUT_0100`.
docs/citus.md#layout is the table of reasons, kept in agreement with this one by a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["distributed", "reference", "local"]


@dataclass(frozen=True)
class Key:
    """A primary key or unique constraint: its name and columns at 0090 (`before`) and on
    Citus (`after`, which includes the distribution column)."""

    name: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    kind: Literal["PRIMARY KEY", "UNIQUE"] = "PRIMARY KEY"


@dataclass(frozen=True)
class DroppedForeignKey:
    """A foreign key Citus cannot keep (it would join two shards): dropped on Citus,
    restored by the downgrade with its definition at 0090. The application (the function
    layer) checks what it checked."""

    name: str
    definition: str  # pg_get_constraintdef at 0090


@dataclass(frozen=True)
class Placement:
    table: str  # schema-qualified
    kind: Kind
    reason: str
    column: str | None = None  # the distribution column (distributed only)
    colocate_with: str | None = None  # None: this table starts its co-location group
    keys: tuple[Key, ...] = field(default_factory=tuple)
    dropped_foreign_keys: tuple[DroppedForeignKey, ...] = field(default_factory=tuple)
    tracking: str | None = None  # the entity column of its row tracking triggers (install_entity_tracking_rows)


def _pk(table: str, before: tuple[str, ...], after: tuple[str, ...]) -> Key:
    return Key(f"{table}_pkey", before, after)


ENTITIES = "public.entities"
ACTIVITY = "public.activity_log"

LAYOUT_0100: tuple[Placement, ...] = (
    # --- reference tables: on every node, so any shard joins or checks a key locally
    Placement("public.entity_types", "reference", "entities reference it (foreign key from every shard of entities)"),
    # --- entities: one shard holds an entity, its rows, and its outbox events
    Placement(ENTITIES, "distributed", "tracked writes and their events on one shard", column="id", tracking="id"),
    Placement("public.contacts", "distributed", "one row per entity (id = entities.id)", column="id",
              colocate_with=ENTITIES, tracking="id"),
    Placement("public.addresses", "distributed", "one row per entity (id = entities.id)", column="id",
              colocate_with=ENTITIES, tracking="id"),
    Placement("public.entity_touchpoints", "distributed", "rows of one entity", column="entity_id", colocate_with=ENTITIES,
              keys=(_pk("entity_touchpoints", ("id",), ("entity_id", "id")),), tracking="entity_id"),
    Placement("public.entity_achievements", "distributed", "rows of one entity (the outbox consumer writes them)",
              column="entity_id", colocate_with=ENTITIES,
              keys=(_pk("entity_achievements", ("id",), ("entity_id", "id")),)),
    Placement("public.entity_relationships", "distributed",
              "tracked by from_entity_id: the link lives with its source entity", column="from_entity_id",
              colocate_with=ENTITIES, keys=(_pk("entity_relationships", ("id",), ("from_entity_id", "id")),),
              dropped_foreign_keys=(DroppedForeignKey(
                  "entity_relationships_to_entity_id_fkey",
                  "FOREIGN KEY (to_entity_id) REFERENCES entities(id) ON DELETE CASCADE"),),
              tracking="from_entity_id"),
    Placement("public.address_contacts", "distributed",
              "tracked by contact_id: the link lives with its contact", column="contact_id", colocate_with=ENTITIES,
              dropped_foreign_keys=(DroppedForeignKey(
                  "address_contacts_address_id_fkey",
                  "FOREIGN KEY (address_id) REFERENCES addresses(id) ON DELETE CASCADE"),),
              tracking="contact_id"),
    Placement("public.entity_events", "distributed",
              "the outbox: written by the row tracking trigger on the tracked row's shard (partitions follow)",
              column="entity_id", colocate_with=ENTITIES,
              keys=(_pk("entity_events", ("id", "occurred_at"), ("entity_id", "id", "occurred_at")),)),
    Placement("public.entity_events_archive", "distributed", "archiving moves rows shard-locally", column="entity_id",
              colocate_with=ENTITIES,
              keys=(_pk("entity_events_archive", ("id", "occurred_at"), ("entity_id", "id", "occurred_at")),)),
    # --- activity_log: written by the application only (no trigger since 0090); entity_id may be NULL
    Placement(ACTIVITY, "distributed",
              "grows without bound; entity_id and user_id may be NULL, so by id (partitions follow)", column="id"),
    Placement("public.activity_log_archive", "distributed", "archiving moves rows shard-locally", column="id",
              colocate_with=ACTIVITY),
    # --- local (on the coordinator)
    # analytics: Citus refuses RLS policies with subqueries on distributed and reference tables
    # ("Subqueries are not supported in policies on distributed tables"), and every policy of
    # revision 0013 has one; the released ingest functions upsert ON CONFLICT (session_id) / (id),
    # which cannot include user_code. docs/citus.md#analytics says what a later revision changes.
    Placement("public.analytics_daily_user_stats", "local", "analytics roll-up: its RLS policy has a subquery (see above)"),
    Placement("public.analytics_daily_group_stats", "local", "analytics roll-up: its RLS policy has a subquery (see above)"),
    Placement("public.analytics_daily_page_stats", "local", "analytics roll-up: its RLS policy has a subquery (see above)"),
    Placement("public.analytics_daily_click_targets", "local", "analytics roll-up: its RLS policy has a subquery (see above)"),
    Placement("public.analytics_user_code_owners", "local",
              "read by the analytics policies; its own policy has a subquery (see above)"),
    Placement("public.analytics_sessions", "local",
              "analytics raw table: policy with a subquery; ingest upserts ON CONFLICT (session_id); user_code may be NULL"),
    Placement("public.analytics_page_views", "local", "as analytics_sessions (ON CONFLICT (id); foreign key to the sessions)"),
    Placement("public.analytics_clicks", "local", "as analytics_sessions (ON CONFLICT (id); foreign key to the sessions)"),
    Placement("public.analytics_events", "local", "the legacy event table, read once by the legacy move"),
    Placement("public.analytics_events_archive", "local", "the legacy table's archive"),
    Placement("public.goal_events", "local", "entity_id may be NULL; archived row by row"),
    Placement("public.goal_events_archive", "local", "goal_events' archive"),
    Placement("public.context_events", "local", "planner tables: foreign keys chain three different keys; small per user"),
    Placement("public.calendar_events", "local", "planner (see context_events)"),
    Placement("public.calendar_projections", "local", "planner (see context_events)"),
    Placement("public.roadmap_items", "local", "planner (see context_events)"),
    Placement("public.event_retries", "local", "outbox consumers' failures: claimed FOR UPDATE SKIP LOCKED ... LIMIT"),
    Placement("public.alembic_version", "local", "the migration history"),
    Placement("trackschema.consumers", "local", "outbox consumers' cursors (coordinator snapshots)"),
) + tuple(
    Placement(f"trackschema.{name}", "local", "trackschema's bookkeeping, read and written on the coordinator")
    for name in ("analytics_dirty_days", "analytics_ingest_rejects", "analytics_legacy_sessions", "analytics_raw_horizon",
                 "analytics_roles", "analytics_rollup_days", "backfill_batches", "backfill_checkpoints", "entity_tracking",
                 "job_runs", "matview_refreshes", "outbox", "partitioned_tables", "promotion_rejects", "table_size_snapshots")
)


def by_table(layout: tuple[Placement, ...] = LAYOUT_0100) -> dict[str, Placement]:
    return {placement.table: placement for placement in layout}
