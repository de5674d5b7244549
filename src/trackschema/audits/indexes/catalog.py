"""One read of the catalog that every index check works from.

Partitioned indexes are seen at the parent: their scan counts and sizes are summed over
every partition's index (`pg_partition_tree`), and the per-partition child indexes are
not listed on their own. Reading the catalog once keeps the audit fast on databases with
thousands of indexes.

On Citus the definitions come from the coordinator's catalog (DDL is propagated to every
shard), and the figures of Citus tables' indexes (scans, bytes, invalid copies, bloat)
and tables (bytes) from their shards on every node (`shards.read`), summed per logical
index; `IndexInfo.shards` says how many shard placements were read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import psycopg

from trackschema.runtime.db import ident_text

if TYPE_CHECKING:
    from trackschema.audits.indexes.shards import Figures, ShardFigures

INDEX_QUERY = """
SELECT i.indexrelid::bigint                       AS oid,
       n.nspname                                  AS schema,
       t.relname                                  AS table_name,
       c.relname                                  AS index_name,
       t.relkind::text                            AS table_kind,
       c.relkind::text                            AS index_kind,
       am.amname                                  AS access_method,
       i.indisunique, i.indisprimary, i.indisvalid,
       con.conname                                AS constraint_name,
       i.indkey::int2[]                           AS keys,
       i.indnkeyatts                              AS key_count,
       i.indclass::oid[]::bigint[]                AS opclasses,
       i.indcollation::oid[]::bigint[]            AS collations,
       i.indoption::int2[]                        AS options,
       pg_get_expr(i.indexprs, i.indrelid)        AS expressions,
       pg_get_expr(i.indpred, i.indrelid)         AS predicate,
       pg_get_indexdef(i.indexrelid)              AS definition,
       tree.scans, tree.bytes, tree.partitions,
       c.relpages::bigint                         AS pages,
       greatest(c.reltuples, 0)::float8           AS tuples,
       tree.members
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am am ON am.oid = c.relam
  LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
  CROSS JOIN LATERAL (
      SELECT coalesce(sum(s.idx_scan), 0)::bigint AS scans,
             coalesce(sum(pg_relation_size(p.relid)), 0)::bigint AS bytes,
             count(*) FILTER (WHERE p.isleaf AND c.relkind = 'I')::int AS partitions,
             array_agg(p.relid::oid::bigint) AS members
        FROM (SELECT relid, isleaf FROM pg_partition_tree(i.indexrelid)
              UNION ALL
              SELECT i.indexrelid, true WHERE c.relkind = 'i') p  -- a plain index is not in a tree
        LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = p.relid
  ) tree
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND n.nspname NOT LIKE 'pg_temp%%'
   AND NOT c.relispartition
 ORDER BY n.nspname, t.relname, c.relname
"""


@dataclass(frozen=True)
class IndexInfo:
    """An index as the checks see it (at the parent, for partitioned indexes)."""

    oid: int
    schema: str
    table_name: str
    index_name: str
    table_kind: str
    index_kind: str
    access_method: str
    is_unique: bool
    is_primary: bool
    is_valid: bool
    constraint_name: str | None
    keys: list[int]
    key_count: int
    opclasses: list[int]
    collations: list[int]
    options: list[int]
    expressions: str | None
    predicate: str | None
    definition: str
    scans: int
    bytes: int
    partitions: int
    pages: int
    tuples: float
    members: list[int] = field(default_factory=list)  # the index and its partitions' indexes
    shards: int | None = None  # Citus: shard placements whose figures were summed; None elsewhere
    invalid_shards: int = 0  # Citus: placements where this index is INVALID
    shard_nodes: int = 0  # Citus: nodes those placements are on

    def where(self) -> str:
        """Where the figures were summed: partitions and/or shards (empty for a plain index)."""
        parts = [f"{self.partitions} partitions"] if self.is_partitioned else []
        if self.shards is not None:
            parts.append(f"{self.shards} shards on {self.shard_nodes} node(s)")
        return " across " + ", ".join(parts) if parts else ""

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.table_name}"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.index_name}"

    @property
    def is_partitioned(self) -> bool:
        return self.index_kind == "I"

    @property
    def enforces_something(self) -> bool:
        """Unique, primary key or backing a constraint: dropping it changes behaviour."""
        return self.is_unique or self.is_primary or self.constraint_name is not None

    def shape(self, columns: int | None = None) -> tuple[object, ...]:
        """What makes two indexes interchangeable, over their first `columns` key columns."""
        n = self.key_count if columns is None else columns
        return (self.access_method, tuple(self.keys[:n]), tuple(self.opclasses[:n]), tuple(self.collations[:n]),
                tuple(self.options[:n]), self.expressions, self.predicate)


@dataclass(frozen=True)
class AuditContext:
    """The catalog snapshot plus facts about the statistics behind it."""

    indexes: list[IndexInfo]
    stats_since: datetime | None
    stats_reset: bool
    now: datetime
    conn: psycopg.Connection
    shard_figures: "ShardFigures | None" = None  # Citus: figures read from the shards

    @property
    def citus(self) -> bool:
        """Figures of Citus tables came from their shards."""
        return self.shard_figures is not None

    def table_shards(self, table: str) -> int | None:
        """Shard placements read for a table (`schema.table`); None if it is not a Citus table."""
        fig = self.table_figures.get(table)
        return fig.placements if fig else None

    @cached_property
    def table_figures(self) -> dict[str, "Figures"]:
        """Citus tables (`schema.table`, partitions summed into the parent): their shards' figures."""
        if self.shard_figures is None:
            return {}
        found = {}
        for name, members in self.conn.execute(TABLE_MEMBERS).fetchall():
            fig = self.shard_figures.summed(list(members))
            if fig is not None:
                found[name] = fig
        return found

    @property
    def stats_age(self) -> timedelta | None:
        return self.now - self.stats_since if self.stats_since else None

    def ident(self, *parts: str) -> str:
        """A quoted, dotted identifier as it goes into a fix statement."""
        return ident_text(self.conn, *parts)


TABLE_MEMBERS = """
SELECT n.nspname || '.' || t.relname,
       array(SELECT p.relid::oid::bigint FROM pg_partition_tree(t.oid) p UNION SELECT t.oid::bigint)  -- a plain table is in no tree
  FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE t.relkind IN ('r', 'p') AND NOT t.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
"""


def load(conn: psycopg.Connection) -> AuditContext:
    from trackschema.audits.indexes import bloat, shards

    rows = conn.execute(INDEX_QUERY).fetchall()
    indexes = [IndexInfo(*row) for row in rows]
    since, reset, now = conn.execute(
        """SELECT coalesce(stats_reset, pg_postmaster_start_time()), stats_reset IS NOT NULL, now()
             FROM pg_stat_database WHERE datname = current_database()"""
    ).fetchone()  # type: ignore[misc]
    figures = shards.read(conn, bloat.ESTIMATE)
    if figures is not None:
        indexes = [_from_shards(idx, figures) for idx in indexes]
        if figures.stats_since and figures.stats_since > since:
            since = figures.stats_since  # the youngest node's statistics bound what they prove
    return AuditContext(indexes, since, reset, now, conn, figures)


def _from_shards(idx: IndexInfo, figures: "ShardFigures") -> IndexInfo:
    """A Citus table's index with its shards' figures; any other index unchanged."""
    fig = figures.summed(idx.members)
    if fig is None:
        return idx
    return replace(idx, scans=fig.scans, bytes=fig.bytes, shards=fig.placements, invalid_shards=fig.invalid,
                   shard_nodes=len(fig.nodes))
