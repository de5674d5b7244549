"""The table-sizes job on Citus: a distributed table's snapshot holds its shards' rows and
bytes on every node, not the coordinator's empty shell (status shows growth from these)."""

from __future__ import annotations

import psycopg

from trackschema.jobs import registry as jobs
from trackschema.status import citus_table_sizes
from trackschema.testing.databases import Database


def test_table_sizes_records_the_shards_of_distributed_tables(citus_head: Database) -> None:
    with citus_head.connect() as conn:
        conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('sizes-job', 'Sizes job') ON CONFLICT DO NOTHING")
        conn.execute("""INSERT INTO entities (entity_type_id, status)
                        SELECT t.id, 'active' FROM entity_types t, generate_series(1, 300) WHERE t.name = 'sizes-job'""")
        conn.execute("ANALYZE entities")
        shell = conn.execute("SELECT pg_total_relation_size('entities')").fetchone()[0]  # type: ignore[index]
        expected = citus_table_sizes(conn)["entities"]

    run = jobs.run(citus_head.settings, "table-sizes")
    assert run.status == "succeeded", run.error
    assert run.result["sharded"] >= 10  # type: ignore[index]  # the distributed and reference tables of 0100

    with psycopg.connect(citus_head.url) as conn:
        recorded = conn.execute(
            """SELECT rows_estimate, total_bytes FROM trackschema.table_size_snapshots
                WHERE table_name = 'entities' ORDER BY taken_at DESC LIMIT 1""").fetchone()
    assert recorded is not None
    rows, size = recorded
    assert rows == expected[0] and rows >= 300
    assert size == expected[1] and size > shell  # 32 shards' tables and indexes against one empty shell
