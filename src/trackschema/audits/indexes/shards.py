"""Index figures read from the shards of a Citus database (not a check: the catalog uses it).

On Citus the coordinator holds only empty shells of distributed tables: their index
usage, sizes and bloat live in the shards on the workers (and, for reference tables, in
a placement on every node, the coordinator included). This module reads every node's
statistics once (`run_command_on_all_nodes`, one statement per node) and maps each shard
relation back to the coordinator's logical relation: the shard of relation R with shard
id S is named `shard_name(R, S)` (`<name>_<shardid>`, shortened with a hash when long),
and `pg_dist_shard`/`pg_dist_placement`/`pg_dist_node` say which node holds it. Every
placement is summed: a reference table's index is used on whichever node served a query.

A node that does not answer makes the audit fail naming it: figures with a node missing
would report used indexes as unused.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from trackschema.errors import TrackschemaError
from trackschema.runtime.citus import is_citus

# Coordinator: every placement of every Citus table, and of each of its indexes, by node.
PLACEMENTS = """
SELECT d.nodeid, n.nspname, names.parts[cardinality(names.parts)], x.oid::bigint, x.is_index, s.shardid
  FROM pg_dist_shard s
  JOIN pg_dist_placement p ON p.shardid = s.shardid
  JOIN pg_dist_node d ON d.groupid = p.groupid AND d.noderole = 'primary'
  CROSS JOIN LATERAL (
      SELECT s.logicalrelid AS oid, false AS is_index
      UNION ALL
      SELECT i.indexrelid, true FROM pg_index i WHERE i.indrelid = s.logicalrelid
  ) x
  JOIN pg_class c ON c.oid = x.oid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL (SELECT parse_ident(shard_name(x.oid, s.shardid)) AS parts) names
"""

NODES = "SELECT nodeid, nodename || ':' || nodeport FROM pg_dist_node WHERE noderole = 'primary' ORDER BY groupid, nodeid"

# Every node: its shard tables' and indexes' figures, and the start of its statistics.
# Bloat inputs are the bloat check's estimate, per shard index (`{estimate}` below).
NODE_FIGURES = """
SELECT json_build_object(
  'since', (SELECT coalesce(stats_reset, pg_postmaster_start_time()) FROM pg_stat_database WHERE datname = current_database()),
  'relations', coalesce((
      SELECT json_agg(json_build_array(n.nspname, c.relname, coalesce(s.idx_scan, 0), pg_relation_size(c.oid), coalesce(i.indisvalid, true),
                                       greatest(c.reltuples, 0), CASE WHEN c.relkind = 'r' THEN pg_total_relation_size(c.oid) ELSE 0 END))
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_index i ON i.indexrelid = c.oid
        LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = c.oid
       WHERE c.relkind IN ('r', 'i') AND c.relname ~ '_[0-9]+$'
         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')), '[]'::json),
  'bloat', coalesce((
      SELECT json_agg(json_build_array(e.nspname, e.index_name, e.pages, e.block_size, e.expected_pages))
        FROM ({estimate}) e), '[]'::json))
"""


@dataclass
class Figures:
    """One logical relation's figures summed over its placements."""

    placements: int = 0
    scans: int = 0
    bytes: int = 0
    invalid: int = 0
    rows: float = 0.0  # tables: reltuples of every placement (a reference table counts once per node)
    total_bytes: int = 0  # tables: pg_total_relation_size (indexes and TOAST included)
    bloat_pages: float = 0.0
    bloat_expected: float = 0.0
    block_size: int = 8192
    nodes: set[str] = field(default_factory=set)
    shard_ids: set[int] = field(default_factory=set)

    @property
    def rows_estimate(self) -> int:
        """Rows once, whatever the number of copies (a reference table has one per node)."""
        return int(self.rows * len(self.shard_ids) / self.placements) if self.placements else 0

    def add(self, other: "Figures") -> None:
        self.placements += other.placements
        self.scans += other.scans
        self.bytes += other.bytes
        self.invalid += other.invalid
        self.rows += other.rows
        self.total_bytes += other.total_bytes
        self.bloat_pages += other.bloat_pages
        self.bloat_expected += other.bloat_expected
        self.block_size = other.block_size
        self.nodes |= other.nodes
        self.shard_ids |= other.shard_ids


@dataclass(frozen=True)
class ShardFigures:
    """Figures per coordinator relation oid (tables and indexes of Citus tables), the nodes
    read (`host:port`), and the youngest start of statistics among them."""

    by_oid: dict[int, Figures]
    nodes: list[str]
    stats_since: datetime | None

    def summed(self, oids: list[int]) -> Figures | None:
        """The figures of `oids` (an index and its partitions' indexes) added up; None when
        none of them is a Citus relation."""
        parts = [self.by_oid[o] for o in oids if o in self.by_oid]
        if not parts:
            return None
        total = Figures()
        for part in parts:
            total.add(part)
        return total


def read(conn: psycopg.Connection, estimate: str | None = None) -> ShardFigures | None:
    """Every node's figures mapped to the coordinator's relations; None without Citus tables.

    `estimate` is the bloat check's per-index query, run on every node as well (none
    without it). Raises TrackschemaError naming a node that does not answer."""
    if not is_citus(conn):
        return None
    wanted: dict[tuple[int, str, str], tuple[int, bool, int]] = {
        (node, schema, name): (oid, is_index, shard) for node, schema, name, oid, is_index, shard in conn.execute(PLACEMENTS).fetchall()
    }
    if not wanted:
        return None
    names = dict(conn.execute(NODES).fetchall())
    no_estimate = "SELECT NULL::name AS nspname, NULL::name AS index_name, 0 AS pages, 0 AS block_size, 0 AS expected_pages WHERE false"
    command = NODE_FIGURES.format(estimate=(estimate or no_estimate).replace("%%", "%"))
    rows = conn.execute("SELECT nodeid, success, result FROM run_command_on_all_nodes(%s)", (command,)).fetchall()
    by_oid: dict[int, Figures] = defaultdict(Figures)
    since: datetime | None = None
    read_nodes = []
    for node, success, result in rows:
        label = names.get(node, f"node {node}")
        if not success:
            first = str(result).strip().splitlines()[0] if result else "no answer"
            raise TrackschemaError(f"cannot read index statistics from Citus node {label}: {first}; the audit needs every node")
        data = json.loads(result)
        read_nodes.append(label)
        node_since = datetime.fromisoformat(data["since"]) if data.get("since") else None
        if node_since and (since is None or node_since > since):
            since = node_since
        for schema, name, scans, size, valid, rows, total in data["relations"]:
            hit = wanted.get((node, schema, name))
            if hit is None:
                continue
            fig = by_oid[hit[0]]
            fig.placements += 1
            fig.shard_ids.add(hit[2])
            fig.bytes += int(size)
            fig.nodes.add(label)
            if hit[1]:
                fig.scans += int(scans)
                fig.invalid += 0 if valid else 1
            else:
                fig.rows += float(rows)
                fig.total_bytes += int(total)
        for schema, name, pages, block_size, expected in data["bloat"]:
            hit = wanted.get((node, schema, name))
            if hit is None or expected is None:
                continue
            fig = by_oid[hit[0]]
            fig.bloat_pages += float(pages)
            fig.bloat_expected += float(expected)
            fig.block_size = int(block_size)
    return ShardFigures(dict(by_oid), sorted(read_nodes), since)
