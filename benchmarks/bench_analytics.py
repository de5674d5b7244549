"""Analytics benchmarks: ingest throughput, dashboards from roll-ups vs raw rows, daily aggregation.

Builds its own data on a throwaway server from `trackschema.provision.provision()` (or
`--database-url`, where it creates and drops its own databases) and prints every result
next to a baseline measured in the same run:

1. ingest: `analytics_ingest` with 1000-event batches (sessions, page views, clicks),
   one client, one transaction per batch, against a plain 1000-row multi-VALUES INSERT and
   COPY of page-view-shaped rows into a bare table (primary key only).
2. dashboard: a user's 30 closed days from the roll-ups (`analytics_dashboard_daily`) vs the
   same numbers from the raw rows (`analytics_daily_stats_raw`), at `--raw-events` raw
   events over 30 days; traffic per user is Zipf-like (user u0 has ~10%), so both the
   heaviest user and a median one are measured. p50 over repeated prepared calls.
3. aggregation: `aggregate_analytics_daily` of the day holding `--day-events` events vs a
   plain count(*) scan of that day's raw rows.

    python benchmarks/bench_analytics.py --raw-events 10000000 --day-events 1000000 --ingest-events 200000
    python benchmarks/bench_analytics.py --only ingest --ingest-events 200000

Raw rows are generated set-based (INSERT ... SELECT generate_series) with triggers and FK
checks off (session_replication_role = replica) and indexes built afterwards; counters,
dirty markers and roll-ups are then produced the normal way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trackschema.analytics.sample import sample_events  # noqa: E402
from trackschema.runtime.provision import provision  # noqa: E402
from trackschema.runtime.scratch import scratch_database  # noqa: E402

RAW_INDEXES = """
CREATE INDEX idx_sessions_user_code_first_seen ON analytics_sessions (user_code, first_seen DESC);
CREATE INDEX idx_sessions_first_seen ON analytics_sessions (first_seen);
CREATE INDEX idx_page_views_user_code_viewed_at ON analytics_page_views (user_code, viewed_at DESC);
CREATE INDEX idx_page_views_session_id ON analytics_page_views (session_id);
CREATE INDEX idx_page_views_viewed_at ON analytics_page_views (viewed_at);
CREATE INDEX idx_clicks_user_code_clicked_at ON analytics_clicks (user_code, clicked_at DESC);
CREATE INDEX idx_clicks_session_id ON analytics_clicks (session_id);
CREATE INDEX idx_clicks_clicked_at ON analytics_clicks (clicked_at);
"""
DROP_RAW_INDEXES = """
DROP INDEX idx_sessions_user_code_first_seen, idx_sessions_first_seen,
           idx_page_views_user_code_viewed_at, idx_page_views_session_id, idx_page_views_viewed_at,
           idx_clicks_user_code_clicked_at, idx_clicks_session_id, idx_clicks_clicked_at;
"""
# One session = 1 session event + 6 page views + 3 clicks = 10 raw events.
SESSIONS_OF_DAY = """
INSERT INTO analytics_sessions (session_id, user_code, share_code, first_seen, last_seen, page_views, clicks, user_agent)
SELECT 'b' || %(day_no)s || '-' || g,
       'u' || (floor(exp(random() * ln(1001)))::int - 1),
       (ARRAY['card', 'qr', 'email', NULL])[1 + g %% 4],
       %(start)s::timestamptz + (g::float8 / %(n)s) * %(span)s * interval '1 second',
       %(start)s::timestamptz + (g::float8 / %(n)s) * %(span)s * interval '1 second' + interval '100 seconds',
       6, 3, 'bench'
  FROM generate_series(1, %(n)s) AS g
"""
EVENTS_OF_DAY = """
INSERT INTO analytics_page_views (id, session_id, user_code, share_code, page_type, viewed_at)
SELECT gen_random_uuid(), s.session_id, s.user_code, s.share_code, (ARRAY['home', 'contact', 'profile', 'portfolio'])[1 + k %% 4],
       s.first_seen + k * interval '15 seconds'
  FROM analytics_sessions s, generate_series(0, 5) AS k
 WHERE s.first_seen >= %(start)s AND s.first_seen < %(start)s::timestamptz + interval '1 day'
 ORDER BY s.first_seen, k;
INSERT INTO analytics_clicks (id, session_id, user_code, share_code, click_target, click_category, clicked_at)
SELECT gen_random_uuid(), s.session_id, s.user_code, s.share_code, (ARRAY['phone', 'email', 'whatsapp'])[1 + k],
       'contact', s.first_seen + k * interval '20 seconds' + interval '5 seconds'
  FROM analytics_sessions s, generate_series(0, 2) AS k
 WHERE s.first_seen >= %(start)s AND s.first_seen < %(start)s::timestamptz + interval '1 day'
 ORDER BY s.first_seen, k;
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def p50(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(repeats))


# --- 1. ingest --------------------------------------------------------------------------


def bench_ingest(url: str, events: int) -> dict[str, float]:
    stream = sample_events(now=datetime.now(timezone.utc), days=2, sessions_per_day=max(events // 10, 10), seed=3, prefix="bench")
    batches: list[str] = []
    batch: list[dict[str, object]] = []
    for event in stream:
        batch.append(event)
        if len(batch) == 1000:
            batches.append(json.dumps({"events": batch}))
            batch = []
            if len(batches) * 1000 >= events:
                break
    total = len(batches) * 1000
    now = datetime.now(timezone.utc)
    rows = [(f"s{i % 100}", "u1", "card", "home", now) for i in range(1000)]
    # rendered once: the timed loop sends the same text as before, with no composing per statement
    insert_sql = sql.SQL("INSERT INTO bench_plain (session_id, user_code, share_code, page_type, viewed_at) VALUES {}").format(
        sql.SQL(",").join([sql.SQL("(%s, %s, %s, %s, %s)")] * 1000)).as_string()
    flat = [v for r in rows for v in r]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""CREATE TABLE bench_plain (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), session_id text NOT NULL,
                        user_code text, share_code text, page_type text NOT NULL, viewed_at timestamptz NOT NULL)""")
        for _ in range(3):  # warm-up: plans, caches
            conn.execute(insert_sql, flat, prepare=True)
        plain = timed(lambda: [conn.execute(insert_sql, flat, prepare=True) for _ in range(len(batches))])
        # the same 1000 rows built server-side (no 5,000 parameters to bind and send)
        server_sql = ("INSERT INTO bench_plain (session_id, user_code, share_code, page_type, viewed_at) "
                      "SELECT 's' || (g % 100), 'u1', 'card', 'home', now() FROM generate_series(1, 1000) g")
        plain_server = timed(lambda: [conn.execute(server_sql, prepare=True) for _ in range(len(batches))])

        def copy_all() -> None:
            with conn.cursor() as cur:
                for _ in range(len(batches)):
                    with cur.copy("COPY bench_plain (session_id, user_code, share_code, page_type, viewed_at) FROM STDIN") as cp:
                        for r in rows:
                            cp.write_row(r)

        copy = timed(copy_all)

        # the same rows ingest writes (per batch ~1 session : 3.5 page views : 1.5 clicks), set-based
        # into the real tables (their keys, indexes, FK checks and triggers), with no JSON at all
        counter = iter(range(10**9))
        floor_sql = [
            """INSERT INTO analytics_sessions (session_id, user_code, share_code, first_seen, last_seen, page_views, clicks)
               SELECT %(p)s || g, 'u' || (g %% 50), 'card', now(), now(), 3, 2 FROM generate_series(1, 167) g ORDER BY 1""",
            """INSERT INTO analytics_page_views (session_id, user_code, share_code, page_type, viewed_at)
               SELECT %(p)s || (1 + g %% 167), 'u' || (g %% 50), 'card', 'home', now() FROM generate_series(1, 583) g""",
            """INSERT INTO analytics_clicks (session_id, user_code, share_code, click_target, clicked_at)
               SELECT %(p)s || (1 + g %% 167), 'u' || (g %% 50), 'card', 'phone', now() FROM generate_series(1, 250) g""",
        ]

        def floor_all() -> None:
            for _ in range(len(batches)):
                prefix = {"p": f"floor-{next(counter)}-"}
                with conn.transaction():
                    # like analytics_ingest, count in the session row instead of the counter trigger
                    conn.execute("SELECT set_config('trackschema.analytics_ingest_batch', 'floor', true)")
                    for statement in floor_sql:
                        conn.execute(statement, prefix, prepare=True)

        floor = timed(floor_all)
        warm = json.dumps({"events": json.loads(batches[0])["events"][:50]}).replace('"bench-', '"warm-')
        conn.execute("SELECT analytics_ingest(%s::jsonb)", (warm,))
        rejected = 0

        def ingest_all() -> None:
            nonlocal rejected
            for b in batches:
                result = conn.execute("SELECT analytics_ingest(%s::jsonb)", (b,), prepare=True).fetchone()[0]  # type: ignore[index]
                rejected += len(result["rejected"])

        ingest = timed(ingest_all)
        mismatches = conn.execute(
            """SELECT count(*) FROM analytics_sessions s
                WHERE session_id NOT LIKE 'floor-%%'
                  AND page_views <> (SELECT count(*) FROM analytics_page_views p WHERE p.session_id = s.session_id)"""
        ).fetchone()[0]  # type: ignore[index]
    assert rejected == 0 and mismatches == 0, (rejected, mismatches)
    return {"events": total, "ingest_per_s": total / ingest, "plain_insert_per_s": total / plain,
            "plain_server_insert_per_s": total / plain_server, "copy_per_s": total / copy,
            "schema_floor_per_s": total / floor}


# --- 2 and 3. roll-ups and dashboards -------------------------------------------------------


def build_raw(conn: psycopg.Connection, raw_events: int, day_events: int, today: date) -> tuple[date, int]:
    """30 closed days of raw events (the last one holds `day_events`) and today's so far.
    Returns (the heavy day, raw events in the 30 closed days)."""
    heavy_day = today - timedelta(days=1)
    other = max(raw_events - day_events, 0) // 29
    conn.execute("SET session_replication_role = replica")  # no triggers, no FK checks while loading
    conn.execute(DROP_RAW_INDEXES)
    now = datetime.now(timezone.utc)
    for n in range(30, -1, -1):
        day = today - timedelta(days=n)
        start = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)
        span = 86_000.0 if n else max((now - start).total_seconds() - 200, 1.0)
        sessions = max(int((day_events if day == heavy_day else other) * span / 86_000) // 10, 1)
        conn.execute(SESSIONS_OF_DAY, {"day_no": n, "start": start, "n": sessions, "span": span})
        for statement in EVENTS_OF_DAY.split(";")[:2]:
            conn.execute(statement, {"start": start})
        log(f"  loaded {day}: {sessions * 10:,} events")
    log("  building indexes")
    conn.execute(RAW_INDEXES)
    conn.execute("RESET session_replication_role")
    conn.execute("VACUUM ANALYZE analytics_sessions, analytics_page_views, analytics_clicks")
    count = conn.execute(
        """SELECT (SELECT count(*) FROM analytics_sessions WHERE first_seen < %(t)s)
                + (SELECT count(*) FROM analytics_page_views WHERE viewed_at < %(t)s)
                + (SELECT count(*) FROM analytics_clicks WHERE clicked_at < %(t)s)""",
        {"t": datetime.combine(today, datetime.min.time(), tzinfo=timezone.utc)},
    ).fetchone()[0]  # type: ignore[index]
    return heavy_day, count


def bench_rollups(url: str, raw_events: int, day_events: int, repeats: int) -> dict[str, object]:
    with psycopg.connect(url, autocommit=True) as conn:
        today = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]  # type: ignore[index]
        started = time.perf_counter()
        heavy_day, total = build_raw(conn, raw_events, day_events, today)
        loaded = time.perf_counter() - started
        first, last = today - timedelta(days=30), today - timedelta(days=1)
        # 3. aggregation of the heavy day vs a plain scan of the same rows
        lo = datetime.combine(heavy_day, datetime.min.time(), tzinfo=timezone.utc)
        scan_sql = """SELECT (SELECT count(*) FROM analytics_page_views WHERE viewed_at >= %(lo)s AND viewed_at < %(hi)s)
                           + (SELECT count(*) FROM analytics_clicks WHERE clicked_at >= %(lo)s AND clicked_at < %(hi)s)
                           + (SELECT count(*) FROM analytics_sessions WHERE first_seen >= %(lo)s AND first_seen < %(hi)s)"""
        scan = p50(lambda: conn.execute(scan_sql, {"lo": lo, "hi": lo + timedelta(days=1)}).fetchone(), 3, warmup=1)
        first_run = timed(lambda: conn.execute("SELECT * FROM aggregate_analytics_daily(%s)", (heavy_day,)).fetchone())
        rerun = timed(lambda: conn.execute("SELECT * FROM aggregate_analytics_daily(%s)", (heavy_day,)).fetchone())
        agg = conn.execute("SELECT sessions + page_views + clicks FROM trackschema.analytics_rollup_days WHERE day = %s",
                           (heavy_day,)).fetchone()[0]  # type: ignore[index]
        rest = timed(lambda: [conn.execute("SELECT * FROM aggregate_analytics_daily(%s)", (d,)).fetchone()
                              for d in (first + timedelta(days=n) for n in range(29))])
        conn.execute("ANALYZE")
        # 2. dashboards: heaviest and median user, 30 closed days
        users = conn.execute(
            """SELECT user_code, sum(total_page_views + total_clicks + total_sessions) AS events
                 FROM analytics_daily_user_stats GROUP BY 1 ORDER BY 2 DESC"""
        ).fetchall()
        dashboards = {}
        for label, (user, events) in (("heaviest", users[0]), ("median", users[len(users) // 2])):
            rolled = conn.execute("SELECT day, total_sessions, total_page_views, total_clicks, unique_share_codes "
                                  "FROM analytics_dashboard_daily(%s, %s, %s)", (user, first, last)).fetchall()
            raw = conn.execute("SELECT * FROM analytics_daily_stats_raw(%s, %s, %s)", (user, first, last)).fetchall()
            assert rolled == raw, f"roll-ups differ from raw rows for {user}"
            fast = p50(lambda: conn.execute("SELECT * FROM analytics_dashboard_daily(%s, %s, %s)", (user, first, last), prepare=True).fetchall(), repeats * 10, warmup=10)
            slow = p50(lambda: conn.execute("SELECT * FROM analytics_daily_stats_raw(%s, %s, %s)", (user, first, last), prepare=True).fetchall(), repeats, warmup=1)
            realtime = p50(lambda: conn.execute("SELECT * FROM analytics_dashboard_daily(%s, %s, %s)", (user, first, today), prepare=True).fetchall(), repeats * 10, warmup=10)
            dashboards[label] = {"user": user, "raw_events_30d": events, "rollup_p50_ms": fast * 1000, "raw_p50_ms": slow * 1000,
                                 "speedup": slow / fast, "realtime_with_today_p50_ms": realtime * 1000}
    return {"raw_events": total, "load_s": loaded, "heavy_day_events": agg, "aggregate_s": first_run, "aggregate_again_s": rerun,
            "scan_s": scan, "other_29_days_s": rest, "dashboards": dashboards}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-events", type=int, default=1_000_000, help="raw events over 30 closed days (10M for the issue's figure)")
    parser.add_argument("--day-events", type=int, default=200_000, help="raw events on the aggregated day (1M for the issue's figure)")
    parser.add_argument("--ingest-events", type=int, default=100_000, help="events ingested in 1000-event batches")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of the slow raw query (fast queries run 10x as often)")
    parser.add_argument("--database-url", help="a server where the benchmark may create databases (default: a throwaway one)")
    parser.add_argument("--only", choices=["ingest", "rollups"], help="run one part only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    server = provision(args.database_url)
    try:
        log(f"server: {server.detail}")
        ingest = rolls = None
        if args.only in (None, "ingest"):
            with scratch_database(server.url, "bench_analytics_ingest", upgrade_to="head") as url:
                log(f"1. ingest: {args.ingest_events:,} events")
                ingest = bench_ingest(url, args.ingest_events)
        if args.only in (None, "rollups"):
            with scratch_database(server.url, "bench_analytics_rollups", upgrade_to="head") as url:
                log(f"2-3. roll-ups: {args.raw_events:,} raw events, {args.day_events:,} on the aggregated day")
                rolls = bench_rollups(url, args.raw_events, args.day_events, args.repeats)
    finally:
        server.stop()
    figures = {"ingest": ingest, "rollups": rolls}
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return
    if ingest is not None:
        print_ingest(ingest)
    if rolls is not None:
        print_rollups(rolls)


def print_ingest(ingest: dict[str, float]) -> None:
    print(f"ingest ({ingest['events']:,} events, 1000-event batches, 1 client):")
    print(f"  analytics_ingest      {ingest['ingest_per_s']:>10,.0f} events/s")
    print(f"  plain 1000-row INSERT {ingest['plain_insert_per_s']:>10,.0f} rows/s   ratio {ingest['ingest_per_s'] / ingest['plain_insert_per_s']:.2f}x")
    print(f"  the same, rows built server-side (INSERT ... SELECT generate_series) {ingest['plain_server_insert_per_s']:>10,.0f} rows/s   "
          f"ratio {ingest['ingest_per_s'] / ingest['plain_server_insert_per_s']:.2f}x")
    print(f"  COPY                  {ingest['copy_per_s']:>10,.0f} rows/s   ratio {ingest['ingest_per_s'] / ingest['copy_per_s']:.2f}x")
    print(f"  same rows set-based into the schema, no JSON {ingest['schema_floor_per_s']:>10,.0f} rows/s   "
          f"ratio {ingest['ingest_per_s'] / ingest['schema_floor_per_s']:.2f}x")
    print(f"  target: >= 100k events/s, i.e. >= {100_000 / 85_000:.2f}x a plain INSERT measured at 85k rows/s on a quiet machine")


def print_rollups(rolls: dict[str, object]) -> None:
    print(f"aggregate one day ({rolls['heavy_day_events']:,} raw events): {rolls['aggregate_s']:.2f}s first run, "
          f"{rolls['aggregate_again_s']:.2f}s again (no change); a plain count(*) of the day's rows takes {rolls['scan_s']:.2f}s "
          f"(ratio {rolls['aggregate_s'] / rolls['scan_s']:.1f}x); target <= 3s")
    print(f"dashboard, 30 closed days, {rolls['raw_events']:,} raw events in them (+ today's so far):")
    for label, d in rolls["dashboards"].items():
        print(f"  {label:8s} user {d['user']:>5} ({d['raw_events_30d']:>9,} events): roll-ups p50 {d['rollup_p50_ms']:.2f} ms, "
              f"raw p50 {d['raw_p50_ms']:.1f} ms -> {d['speedup']:,.0f}x; with today from raw p50 {d['realtime_with_today_p50_ms']:.2f} ms")
    print("  target: >= 1000x and p50 <= 2 ms")


if __name__ == "__main__":
    main()
