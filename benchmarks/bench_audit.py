"""`audit indexes` on a database with many indexes (issue goal: 1,000 indexes in ≤ 1 s).

Builds `--tables` tables with `--indexes-per-table` indexes each (a few duplicates and
prefix-redundant ones among them, and one partitioned table), then times the whole
index audit against a baseline measured in the same run: one read of
`pg_stat_user_indexes`, the cheapest catalog read an index audit can make.

    python benchmarks/bench_audit.py [--tables 100] [--indexes-per-table 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg
from psycopg import sql

from trackschema.audits.indexes import audit_indexes_on
from trackschema.runtime.provision import provision
from trackschema.runtime.settings import libpq_url


def build(conn: psycopg.Connection, tables: int, per_table: int) -> int:
    columns = sql.SQL(", ").join(sql.SQL("{} int").format(sql.Identifier(f"c{i}")) for i in range(per_table))
    for t in range(tables):
        table = sql.Identifier(f"bench_t{t}")
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, {}, doc jsonb)").format(table, columns))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, {}, '{{}}' FROM generate_series(1, 100) g").format(
            table, sql.SQL(", ").join(sql.SQL("g") for _ in range(per_table))))
        for i in range(per_table - 1):
            conn.execute(sql.SQL("CREATE INDEX {} ON {} ({}, {})").format(
                sql.Identifier(f"bench_t{t}_i{i}"), table, sql.Identifier(f"c{i}"), sql.Identifier(f"c{(i + 1) % per_table}")))
        conn.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(sql.Identifier(f"bench_t{t}_prefix"), table, sql.Identifier("c0")))  # redundant with _i0
    conn.execute("ANALYZE")
    return int(conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'").fetchone()[0])  # type: ignore[index]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=100)
    parser.add_argument("--indexes-per-table", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    server = provision()
    try:
        with psycopg.connect(libpq_url(server.url), autocommit=True) as conn:
            count = build(conn, args.tables, args.indexes_per_table)
            audit_times, baseline_times = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                conn.execute("SELECT * FROM pg_stat_user_indexes").fetchall()
                baseline_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                findings = audit_indexes_on(conn)
                audit_times.append(time.perf_counter() - started)
    finally:
        server.stop()
    audit, baseline = statistics.median(audit_times), statistics.median(baseline_times)
    print(f"audit indexes over {count} indexes: median {audit * 1000:.0f} ms ({len(findings)} findings), goal <= 1000 ms")
    print(f"baseline read of pg_stat_user_indexes: median {baseline * 1000:.1f} ms")
    print(f"ratio audit / baseline: {audit / baseline:.0f}x")
    return {"indexes": float(count), "audit_s": audit, "baseline_s": baseline, "findings": float(len(findings))}


if __name__ == "__main__":
    main()
