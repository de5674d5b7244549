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
class CitusNode:
    """One node of a Citus cluster as the coordinator's metadata and the node itself see it.

    `shards` counts the shard placements the node holds (reference tables' copies
    included); `database_bytes` is this database's size on the node, None when the node
    did not answer (`error` says why)."""

    node: str
    role: str
    active: bool
    shards: int
    database_bytes: int | None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CitusStatus:
    """The Citus section of the status page. `outbox_distributed`: entity_events is
    distributed, so the outbox consumers (`queue work`/`queue status`) are refused and the
    page has no queue section."""

    version: str
    nodes: list[CitusNode]
    outbox_distributed: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "nodes": [n.to_dict() for n in self.nodes], "outbox_distributed": self.outbox_distributed}


@dataclass(frozen=True)
class StatusPage:
    revisions: migrate.RevisionStatus
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)
    largest_tables: list[TableSize] = field(default_factory=list)
    matviews: list[MatviewStatus] = field(default_factory=list)
    partitions: list[partitions.PartitionHealth] = field(default_factory=list)
    queue: queue_module.QueueStats | None = None
    promotions: list[promotion_stages.PromotionStage] = field(default_factory=list)
    citus: CitusStatus | None = None  # None on plain PostgreSQL (and no "citus" key in to_dict)

    def to_dict(self) -> dict[str, object]:
        citus = {"citus": self.citus.to_dict()} if self.citus else {}
        return {
            **self.revisions.to_dict(),
            "invalid_indexes": [i.to_dict() for i in self.invalid_indexes],
            "largest_tables": [t.to_dict() for t in self.largest_tables],
            "matviews": [m.to_dict() for m in self.matviews],
            "partitions": [p.to_dict() for p in self.partitions],
            "queue": self.queue.to_dict() if self.queue else None,
            "promotions": [p.to_dict() for p in self.promotions],
            **citus,
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

    Growth needs the `table-sizes` job's snapshots; without one a day old it is None. On
    Citus a Citus table's rows and size are its shards' on every node (`citus_table_sizes`).
    """
    cur.execute("SELECT to_regclass('trackschema.table_size_snapshots') IS NOT NULL")
    has_history = cur.fetchone()[0]
    # Before the revision that creates the history (status works at any revision).
    query = LARGEST_TABLES if has_history else LARGEST_TABLES.replace("trackschema.table_size_snapshots h", "(SELECT NULL::bigint AS total_bytes, NULL::timestamptz AS taken_at, NULL::text AS table_name) h")
    sharded = citus_table_sizes(cur.connection)
    cur.execute(query, (None if sharded else limit,))  # on Citus every table (LIMIT NULL), re-ranked below
    found = [TableSize(t, r, b, float(g) if g is not None else None) for t, r, b, g in cur.fetchall()]
    if sharded:
        found = [TableSize(t.table, *sharded[t.table], t.growth_bytes_per_day) if t.table in sharded else t for t in found]
        found = sorted(found, key=lambda t: (-t.total_bytes, t.table))[:limit]
    return found


def citus_table_sizes(conn) -> dict[str, tuple[int, int]]:  # noqa: ANN001 - psycopg connection
    """Citus tables (by regclass text, as LARGEST_TABLES names them): (rows estimate,
    total bytes) summed over their shards; empty on plain PostgreSQL, or when a node does
    not answer (the coordinator's figures are shown then, and the nodes section says which
    node is unreachable)."""
    from trackschema.audits.indexes import shards
    from trackschema.errors import TrackschemaError

    try:
        figures = shards.read(conn)
    except TrackschemaError:
        return {}
    if figures is None:
        return {}
    found = {}
    for name, members in conn.execute(
        """SELECT t.oid::regclass::text,
                  array(SELECT p.relid::oid::bigint FROM pg_partition_tree(t.oid) p UNION SELECT t.oid::bigint)
             FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE t.relkind IN ('r', 'p') AND NOT t.relispartition
              AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"""
    ).fetchall():
        fig = figures.summed(list(members))
        if fig is not None:
            found[name] = (fig.rows_estimate, fig.total_bytes)
    return found


def collect(settings: Settings) -> StatusPage:
    """Revision status plus catalog health sections."""
    revisions = migrate.revision_status(settings)
    with connect(settings.require_url()) as conn, conn.cursor() as cur:
        citus = citus_status(conn)
        return StatusPage(
            revisions, invalid_indexes(cur), largest_tables(cur),
            promotions=promotion_stages.stages(conn),  # each promotion's stage (issue 3)
            matviews=matview_status(conn),  # each materialized view's last refresh and age (issue 6)
            partitions=partitions.health(conn),  # months ahead, default-partition rows per partitioned table (issue 5)
            queue=None if citus and citus.outbox_distributed else queue_depth(conn),
            citus=citus,
        )


def queue_depth(conn) -> queue_module.QueueStats | None:  # noqa: ANN001 - psycopg connection
    """event_queue depth by status and its oldest unfinished event; None before the queue exists."""
    if conn.execute("SELECT to_regclass('public.event_queue') IS NULL").fetchone()[0]:
        return None
    return queue_module.stats_on(conn)


CITUS_NODES = """
SELECT n.nodeid, n.nodename || ':' || n.nodeport, CASE WHEN n.groupid = 0 THEN 'coordinator' ELSE 'worker' END,
       n.isactive, (SELECT count(*) FROM pg_dist_placement p WHERE p.groupid = n.groupid)::int
  FROM pg_dist_node n
 WHERE n.noderole = 'primary'
 ORDER BY n.groupid, n.nodeid
"""


def citus_status(conn) -> CitusStatus | None:  # noqa: ANN001 - psycopg connection
    """The Citus version and every node (role, active, shard placements, this database's
    size there); None without the citus extension. A node that does not answer is listed
    with its error, not raised: status must work while a worker is down."""
    from trackschema.runtime.citus import is_citus

    if not is_citus(conn):
        return None
    version = conn.execute("SELECT split_part(citus_version(), ' ', 2)").fetchone()
    rows = conn.execute(CITUS_NODES).fetchall()
    sizes: dict[int, tuple[bool, str]] = {}
    if rows:
        sizes = {node: (ok, result) for node, ok, result in conn.execute(
            "SELECT nodeid, success, result FROM run_command_on_all_nodes('SELECT pg_database_size(current_database())')").fetchall()}
    nodes = []
    for node_id, name, role, active, shards in rows:
        ok, result = sizes.get(node_id, (False, "not reached"))
        nodes.append(CitusNode(name, role, bool(active), shards, int(result) if ok else None,
                               None if ok else (str(result or "no answer").strip().splitlines() or ["no answer"])[0]))
    return CitusStatus(str(version[0]), nodes, queue_module.distributed_outbox(conn))
