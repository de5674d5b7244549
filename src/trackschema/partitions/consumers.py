"""Which outbox consumers still need a partition of entity_events, on one node and on
Citus: `partition_needs(conn, partition)`, what `partitions retire` checks before it
detaches anything (docs/design.md#outbox, docs/citus.md#partitions).

On one node (and on Citus while entity_events is local) it is the released SQL function
`trackschema.consumer_partition_needs`. On Citus with entity_events distributed that
function cannot run, for two reasons found on Citus 13.2:

- its failed-events count joins the coordinator's local `event_retries` with a shard of the
  partition in a correlated EXISTS: "direct joins between distributed and local tables are
  not supported" (0A000);
- its events count runs, but answers wrongly: it compares `entity_events.xid` with the
  consumer's snapshot, a coordinator snapshot, and an event written through the coordinator
  is stamped by its worker's own transaction counter (measured: a consumer registered at
  snapshot 816 on the coordinator, then 10 events written, carrying worker xids 752-758:
  "0 events not handled"). Retiring on that answer would lose events the consumer never saw.

So on Citus the same question is answered from Python, in two distributed queries per
consumer: the consumer's cursor read from the coordinator, then

- events: a row is not handled when its transaction started at or after the moment the
  consumer's snapshot was taken (`occurred_at >= snapshot_at`: nothing committed after a
  snapshot can be in it, and `occurred_at` is the writing transaction's now(); on Citus the
  now() of the worker's part of it, which starts after the coordinator's and before the
  commit: seen, 12 rows of one INSERT carried 4 different instants, one per shard
  connection; with workers on other machines this relies on synchronised clocks), or when the
  xid test of the SQL function says so; an open window's handled rows (visible in the
  window snapshot, id <= position) count as handled only when they also started before the
  window was opened. This is the SQL function's answer for every event written before
  entity_events was distributed (coordinator xids), and never less strict for an event
  written on a worker, whose xid says nothing: a worker's event is held as handled only if
  its transaction started before the consumer's snapshot. Consumers cannot run on a
  distributed outbox (`queue work` refuses), so in practice every event written since
  distribution counts for every registered consumer.
- failed events: the consumer's open `event_retries` rows (not dead) read from the
  coordinator, and those whose event is in the partition (`id = ANY(...)` on the shards).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from trackschema.runtime.citus import is_distributed
from trackschema.runtime.db import quote_ident


def partition_needs(conn: psycopg.Connection, partition: str) -> list[tuple[str, int, int]]:
    """(consumer, events not handled, open failed events) for every consumer that still
    needs `partition`; [] when none does, for a table that is not a partition of
    entity_events, and before revision 0090. See the module docstring for Citus."""
    from trackschema.tracking.queue import partition_needs as on_one_node

    if _has_table(conn, "public.entity_events") and is_distributed(conn, "public.entity_events"):
        return citus_partition_needs(conn, partition)
    return on_one_node(conn, partition)


def _has_table(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def citus_partition_needs(conn: psycopg.Connection, partition: str) -> list[tuple[str, int, int]]:
    """`partition_needs` on a Citus database whose entity_events is distributed: read-only,
    two distributed queries per registered consumer (module docstring)."""
    if not _has_table(conn, "trackschema.consumers"):
        return []
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = %s::regclass AND i.inhparent = 'public.entity_events'::regclass)",
        (partition,),
    ).fetchone()
    if not (row and row[0]):
        return []
    consumers = conn.execute(
        """SELECT c.name, c.snapshot_at, pg_snapshot_xmax(c.snapshot)::text,
                  ARRAY(SELECT x::text FROM pg_snapshot_xip(c.snapshot) x),
                  c.position, c.window_snapshot::text, c.window_at
             FROM trackschema.consumers c ORDER BY c.name"""
    ).fetchall()
    table = quote_ident(partition)
    count_events = sql.SQL(
        """SELECT count(*) FROM {} e
            WHERE (e.occurred_at >= %(at)s OR e.xid >= %(xmax)s::xid8 OR e.xid = ANY (%(xip)s::xid8[]))
              AND NOT (%(position)s::uuid IS NOT NULL
                       AND e.occurred_at < coalesce(%(window_at)s::timestamptz, '-infinity')
                       AND pg_visible_in_snapshot(e.xid, %(window)s::pg_snapshot)
                       AND e.id <= %(position)s::uuid)"""
    ).format(table)
    found_events = sql.SQL("SELECT e.id FROM {} e WHERE e.id = ANY (%s::uuid[])").format(table)
    needs = []
    for name, snapshot_at, xmax, xip, position, window, window_at in consumers:
        events_row = conn.execute(count_events, {"at": snapshot_at, "xmax": xmax, "xip": xip, "position": position,
                                                 "window": window, "window_at": window_at}).fetchone()
        events = int(events_row[0]) if events_row else 0
        open_ids = [r[0] for r in conn.execute(
            "SELECT r.entity_event_id FROM public.event_retries r WHERE r.consumer = %s AND r.status <> 'dead' AND r.entity_event_id IS NOT NULL",
            (name,)).fetchall()]
        retries = 0
        if open_ids:
            here = {r[0] for r in conn.execute(found_events, (open_ids,)).fetchall()}
            retries = sum(1 for event_id in open_ids if event_id in here)
        if events > 0 or retries > 0:
            needs.append((name, events, retries))
    return needs
