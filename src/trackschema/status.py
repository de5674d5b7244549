"""The one status page, assembled from the other modules.

Each section is plain data; `trackschema status` renders it for people or as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trackschema import migrate
from trackschema.db import connect
from trackschema.promotions import stages as promotion_stages
from trackschema.settings import Settings


@dataclass(frozen=True)
class InvalidIndex:
    table: str
    index: str
    definition: str

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TableSize:
    table: str
    rows_estimate: int
    total_bytes: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatusPage:
    revisions: migrate.RevisionStatus
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)
    largest_tables: list[TableSize] = field(default_factory=list)
    promotions: list[promotion_stages.PromotionStage] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            **self.revisions.to_dict(),
            "invalid_indexes": [i.to_dict() for i in self.invalid_indexes],
            "largest_tables": [t.to_dict() for t in self.largest_tables],
            "promotions": [p.to_dict() for p in self.promotions],
        }


def invalid_indexes(cur) -> list[InvalidIndex]:  # noqa: ANN001 - psycopg cursor
    """Indexes left INVALID, typically by a failed CREATE INDEX CONCURRENTLY."""
    cur.execute(
        """SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            ORDER BY 1, 2"""
    )
    return [InvalidIndex(*row) for row in cur.fetchall()]


def largest_tables(cur, limit: int = 8) -> list[TableSize]:  # noqa: ANN001
    cur.execute(
        """SELECT c.oid::regclass::text, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
              AND NOT c.relispartition
            ORDER BY pg_total_relation_size(c.oid) DESC, 1
            LIMIT %s""",
        (limit,),
    )
    return [TableSize(*row) for row in cur.fetchall()]


def collect(settings: Settings) -> StatusPage:
    """Revision status plus catalog health sections."""
    revisions = migrate.revision_status(settings)
    with connect(settings.require_url()) as conn, conn.cursor() as cur:
        return StatusPage(revisions, invalid_indexes(cur), largest_tables(cur), promotion_stages.stages(conn))
