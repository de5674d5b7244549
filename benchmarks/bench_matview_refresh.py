"""Materialized views: what readers pay during a refresh, and what the views save.

Builds its own data (ROWS roadmap items over ROWS/1000 projects, ROWS/10 projections,
ROWS/10 contacts with addresses and touchpoints) in a fresh database at head on a server
from `trackschema.provision.provision()`, then measures in one process:

1. reader latency on `dashboard_statistics` (one project's row, a fresh query per read)
   while nothing refreshes (the baseline), during `REFRESH ... CONCURRENTLY` (the job),
   and during a plain `REFRESH` (what the job avoids): p50 and max, as ratios to the baseline;
2. refresh time, CONCURRENTLY against plain (the price of not blocking);
3. the dashboard read from the view against the raw aggregate it replaces.

    python benchmarks/bench_matview_refresh.py --rows 1000000 [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import psycopg

from trackschema.runtime import scratch
from trackschema.runtime.provision import provision

DATABASE = "bench_matviews"

LOAD = """
INSERT INTO roadmap_items (master_project_id, title, status, start_date, end_date)
SELECT ('00000000-0000-7000-8000-' || lpad((g %% %(projects)s)::text, 12, '0'))::uuid, 'item ' || g,
       (ARRAY['active', 'completed', 'blocked', 'archived'])[1 + g %% 4], current_date - g %% 300, current_date + g %% 200
FROM generate_series(1, %(rows)s) AS g;
INSERT INTO calendar_events (id, user_id, title, start_at)
SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, gen_random_uuid(), 'event', now()
FROM generate_series(1, 1000) AS g;
INSERT INTO calendar_projections (calendar_event_id, target_user_id, status)
SELECT ('00000000-0000-7000-8000-' || lpad((1 + g %% 1000)::text, 12, '0'))::uuid,
       ('00000000-0000-7000-8000-' || lpad((g %% %(users)s)::text, 12, '0'))::uuid,
       (ARRAY['pending', 'accepted', 'declined'])[1 + g %% 3]
FROM generate_series(1, %(tenth)s) AS g;
INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact');
INSERT INTO entities (id, entity_type_id)
SELECT ('00000000-0000-7000-9000-' || lpad(g::text, 12, '0'))::uuid, (SELECT id FROM entity_types)
FROM generate_series(1, %(tenth)s) AS g;
INSERT INTO contacts (id, first_name, last_name, email)
SELECT ('00000000-0000-7000-9000-' || lpad(g::text, 12, '0'))::uuid, 'F' || g, 'L' || g, 'c' || g || '@example.com'
FROM generate_series(1, %(tenth)s) AS g;
INSERT INTO entity_touchpoints (entity_id, touchpoint_type)
SELECT ('00000000-0000-7000-9000-' || lpad((1 + g %% %(tenth)s)::text, 12, '0'))::uuid, 'call'
FROM generate_series(1, %(tenth)s * 3) AS g;
"""

RAW_DASHBOARD = """
SELECT master_project_id, count(*), count(*) FILTER (WHERE status = 'active'), count(*) FILTER (WHERE status = 'completed'),
       count(*) FILTER (WHERE status = 'blocked'), max(updated_at)
  FROM roadmap_items GROUP BY master_project_id
"""
VIEW_DASHBOARD = "SELECT entity_id, total_items, active_items, completed_items, blocked_items, last_updated FROM dashboard_statistics WHERE entity_type = 'project'"
ONE_PROJECT = "SELECT * FROM dashboard_statistics WHERE entity_type = 'project' AND entity_id = %s"
ONE_PROJECT_RAW = """SELECT count(*), count(*) FILTER (WHERE status = 'active'), max(updated_at)
                       FROM roadmap_items WHERE master_project_id = %s"""


def _build(server_url: str, rows: int) -> str:
    url = scratch.create_database(server_url, DATABASE, upgrade_to="head")
    with psycopg.connect(url, autocommit=True) as conn:
        tenth = max(rows // 10, 10)
        with psycopg.ClientCursor(conn) as cur:  # several statements: bind client-side
            cur.execute(LOAD, {"rows": rows, "projects": max(rows // 1000, 2), "users": max(tenth // 100, 2), "tenth": tenth})
        conn.execute("VACUUM ANALYZE")
        conn.execute("REFRESH MATERIALIZED VIEW dashboard_statistics")
        conn.execute("REFRESH MATERIALIZED VIEW contact_management_view")
    return url


class Reader(threading.Thread):
    """Reads one project's dashboard row in a loop; records (start, latency) per read."""

    def __init__(self, url: str, project: object) -> None:
        super().__init__(daemon=True)
        self.url, self.project = url, project
        self.reads: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                conn.execute(ONE_PROJECT, (self.project,)).fetchall()
                self.reads.append((started, time.perf_counter() - started))
                time.sleep(0.002)


def _reads_during(url: str, project: object, refresh_sql: str | None, settle: float = 0.3) -> tuple[list[float], float]:
    """Latencies of the reads that overlapped `refresh_sql` (or a quiet 1 s), and its duration."""
    reader = Reader(url, project)
    reader.start()
    time.sleep(settle)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE roadmap_items SET status = 'completed' WHERE id IN (SELECT id FROM roadmap_items TABLESAMPLE SYSTEM (1) LIMIT 500)")
        t0 = time.perf_counter()
        if refresh_sql:
            conn.execute(refresh_sql)
        else:
            time.sleep(1.0)
        t1 = time.perf_counter()
    time.sleep(settle)
    reader.stop.set()
    reader.join()
    overlapping = [lat for start, lat in reader.reads if start < t1 and start + lat > t0]
    return overlapping, t1 - t0


def _timed(conn: psycopg.Connection, query: str, params: Any = None, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="roadmap items (other tables scale from it)")
    parser.add_argument("--url", help="a PostgreSQL server URL (else provision() starts one)")
    args = parser.parse_args(argv)
    server = provision(args.url)
    try:
        started = time.perf_counter()
        url = _build(server.url, args.rows)
        print(f"matview refresh benchmark: {args.rows:,} roadmap items, data built in {time.perf_counter() - started:.1f}s ({server.detail})")
        with psycopg.connect(url, autocommit=True) as conn:
            project = conn.execute("SELECT entity_id FROM dashboard_statistics WHERE entity_type = 'project' LIMIT 1").fetchone()[0]  # type: ignore[index]
            view_all, raw_all = _timed(conn, VIEW_DASHBOARD), _timed(conn, RAW_DASHBOARD, repeat=3)
            view_one, raw_one = _timed(conn, ONE_PROJECT, (project,)), _timed(conn, ONE_PROJECT_RAW, (project,))

        quiet, _ = _reads_during(url, project, None)
        concurrent, concurrent_s = _reads_during(url, project, "REFRESH MATERIALIZED VIEW CONCURRENTLY dashboard_statistics")
        plain, plain_s = _reads_during(url, project, "REFRESH MATERIALIZED VIEW dashboard_statistics")
    finally:
        scratch.drop_database(server.url, DATABASE)
        server.stop()

    def p95(values: list[float]) -> float:
        return sorted(values)[max(0, int(len(values) * 0.95) - 1)]

    base_p50, base_p95 = statistics.median(quiet), p95(quiet)
    figures = {
        "reader_p50_concurrent_vs_quiet": statistics.median(concurrent) / base_p50,
        "reader_p95_concurrent_vs_quiet": p95(concurrent) / base_p95,
        "reader_max_plain_vs_concurrent": max(plain) / max(concurrent),
        "refresh_concurrent_vs_plain": concurrent_s / plain_s,
        "dashboard_raw_vs_view": raw_all / view_all,
        "one_project_raw_vs_view": raw_one / view_one,
    }
    ms = 1000
    print(f"  readers, no refresh: {len(quiet)} reads, p50 {base_p50 * ms:.2f} ms, p95 {base_p95 * ms:.2f} ms (baseline)")
    print(f"  during REFRESH CONCURRENTLY ({concurrent_s:.2f}s): {len(concurrent)} reads, p50 {figures['reader_p50_concurrent_vs_quiet']:.2f}x, "
          f"p95 {figures['reader_p95_concurrent_vs_quiet']:.2f}x baseline, max {max(concurrent) * ms:.1f} ms")
    print(f"  during plain REFRESH ({plain_s:.2f}s): {len(plain)} reads, max {max(plain) * ms:.0f} ms = "
          f"{figures['reader_max_plain_vs_concurrent']:.0f}x the concurrent max (readers wait for the whole refresh)")
    print(f"  refresh time CONCURRENTLY / plain: {figures['refresh_concurrent_vs_plain']:.2f}x")
    print(f"  all-projects dashboard: raw aggregate {raw_all * ms:.1f} ms vs view {view_all * ms:.2f} ms = {figures['dashboard_raw_vs_view']:.0f}x faster from the view")
    print(f"  one project: raw {raw_one * ms:.2f} ms vs view {view_one * ms:.2f} ms = {figures['one_project_raw_vs_view']:.1f}x")
    return figures


if __name__ == "__main__":
    main()
