"""The one status page, assembled from the other modules.

Each section is plain data; `trackschema status` renders it for people or as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trackschema.migrations import runner as migrate
from trackschema.partitions import monthly as partitions
from trackschema.tracking import queue as queue_module
from trackschema.runtime.db import connect
from trackschema.analytics.matviews import MatviewStatus, matview_status
from trackschema.promotions import stages as promotion_stages
from trackschema.runtime.settings import Settings


@dataclass(frozen=True)
class InvalidIndex:
    table: str
    index: str
    definition: str

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TableSize:
    """A table's size now and, where a snapshot about a day old exists, its growth per day."""

    table: str
    rows_estimate: int
    total_bytes: int
    growth_bytes_per_day: float | None = None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatusPage:
    revisions: migrate.RevisionStatus
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)
    largest_tables: list[TableSize] = field(default_factory=list)
    matviews: list[MatviewStatus] = field(default_factory=list)
    partitions: list[partitions.PartitionHealth] = field(default_factory=list)
    queue: queue_module.QueueStats | None = None
    promotions: list[promotion_stages.PromotionStage] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            **self.revisions.to_dict(),
            "invalid_indexes": [i.to_dict() for i in self.invalid_indexes],
            "largest_tables": [t.to_dict() for t in self.largest_tables],
            "matviews": [m.to_dict() for m in self.matviews],
            "partitions": [p.to_dict() for p in self.partitions],
            "queue": self.queue.to_dict() if self.queue else None,
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


LARGEST_TABLES = """
WITH sizes AS (
    SELECT c.oid::regclass::text AS table_name,
           CASE WHEN c.relkind = 'p'
                THEN (SELECT coalesce(sum(greatest(pc.reltuples, 0)), 0) FROM pg_partition_tree(c.oid) p JOIN pg_class pc ON pc.oid = p.relid WHERE p.isleaf)
                ELSE greatest(c.reltuples, 0) END::bigint AS rows_estimate,
           CASE WHEN c.relkind = 'p'
                THEN (SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0) FROM pg_partition_tree(c.oid) p WHERE p.isleaf)
                ELSE pg_total_relation_size(c.oid) END::bigint AS total_bytes
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
)
SELECT s.table_name, s.rows_estimate, s.total_bytes,
       (s.total_bytes - old.total_bytes) / greatest(extract(epoch FROM now() - old.taken_at) / 86400, 1e-9)
  FROM sizes s
  LEFT JOIN LATERAL (
      -- the newest snapshot at least 20 hours old (daily job, some slack)
      SELECT h.total_bytes, h.taken_at FROM trackschema.table_size_snapshots h
       WHERE h.table_name = s.table_name AND h.taken_at <= now() - interval '20 hours'
       ORDER BY h.taken_at DESC LIMIT 1
  ) old ON true
 ORDER BY s.total_bytes DESC, s.table_name
 LIMIT %s
"""


def largest_tables(cur, limit: int = 8) -> list[TableSize]:  # noqa: ANN001
    """The biggest tables (partitions summed into their parent) and their growth per day.

    Growth needs the `table-sizes` job's snapshots; without one a day old it is None.
    """
    cur.execute("SELECT to_regclass('trackschema.table_size_snapshots') IS NOT NULL")
    has_history = cur.fetchone()[0]
    # Before the revision that creates the history (status works at any revision).
    query = LARGEST_TABLES if has_history else LARGEST_TABLES.replace("trackschema.table_size_snapshots h", "(SELECT NULL::bigint AS total_bytes, NULL::timestamptz AS taken_at, NULL::text AS table_name) h")
    cur.execute(query, (limit,))
    return [TableSize(t, r, b, float(g) if g is not None else None) for t, r, b, g in cur.fetchall()]


def collect(settings: Settings) -> StatusPage:
    """Revision status plus catalog health sections."""
    revisions = migrate.revision_status(settings)
    with connect(settings.require_url()) as conn, conn.cursor() as cur:
        return StatusPage(
            revisions, invalid_indexes(cur), largest_tables(cur),
            promotions=promotion_stages.stages(conn),  # each promotion's stage (issue 3)
            matviews=matview_status(conn),  # each materialized view's last refresh and age (issue 6)
            partitions=partitions.health(conn),  # months ahead, default-partition rows per partitioned table (issue 5)
            queue=queue_depth(conn),
        )


def queue_depth(conn) -> queue_module.QueueStats | None:  # noqa: ANN001 - psycopg connection
    """event_queue depth by status and its oldest unfinished event; None before the queue exists."""
    if conn.execute("SELECT to_regclass('public.event_queue') IS NULL").fetchone()[0]:
        return None
    return queue_module.stats_on(conn)
