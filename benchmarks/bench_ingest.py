"""`trackschema ingest` against the fastest set-based load into the same schema, in one run.

Builds its own data on a throwaway server (`trackschema.runtime.provision`, or
`--database-url`, where it creates and drops its own databases) and prints ratios measured
in the same run, on the same server:

1. ingest / floor. Three databases start equal: `ingest` and `floor` at the head revision,
   `before` at 0070 (the schema before the index review of revision 0080). The events
   (`--events`, sample traffic of the last days: sessions, page views, clicks; lines of
   `--events-per-line` events) are cut into `--rounds` chunks, and each round runs, in
   alternating order:
   - ingest: the streaming ingest (`trackschema.analytics.ingest`, the code behind
     `trackschema ingest`) reading the chunk's file: JSON parsing, every check,
     duplicate detection, COPY into staging, `analytics_ingest_staged()`, per-batch commits;
   - floor: the same rows, already read, checked and loaded into a staging table (not
     timed), landed batch by batch as fast as set-based SQL can: per batch one transaction
     with the session upsert (counters computed set-based, once per session), the page
     view INSERT ... SELECT and the click INSERT ... SELECT, both ON CONFLICT (id) DO
     NOTHING (a duplicate must not land twice). Same tables, indexes, foreign keys,
     triggers and row-level security as the ingest hits; no JSON, no checks, no COPY, no
     refusals to record (there are none), nothing else;
   - floor before: the same floor on the `before` database.
   The order rotates from round to round so that each side sees the same machine; autovacuum
   is off on the raw tables of the three databases and a VACUUM (ANALYZE) of each, untimed,
   ends every round, so no database's cleanup runs while another is timed. The figures are
   totals over the rounds; each round's ratios and load are printed too.
2. peak RSS: `python -m trackschema ingest FILE --json` in a subprocess on a file of
   `--rss-lines` lines (one event a line, the smallest batches: the most lines), its
   peak resident set size (VmHWM, read from /proc while it runs).

Prints a table on stderr, then one JSON line on stdout with `ingest_events_per_s`,
`floor_events_per_s`, `ratio` (ingest / floor), `floor_gain` (floor / floor before),
`peak_rss_mb` and the context (sizes, load average, server).

    python benchmarks/bench_ingest.py                     # 1M events, 1M-line RSS file
    python benchmarks/bench_ingest.py --quick             # 100k events, 100k lines: under a minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trackschema.analytics import dashboard, ingest, ingest_stream, retention, rollups  # noqa: E402
from trackschema.analytics.dates import db_today  # noqa: E402
from trackschema.audits.indexes import audit_indexes_on  # noqa: E402
from trackschema.analytics.sample import sample_events  # noqa: E402
from trackschema.runtime.provision import provision  # noqa: E402
from trackschema.runtime.scratch import create_database, drop_database  # noqa: E402

BEFORE = "0070_analytics_ingest_iso_times"

STAGING_COLUMNS = ("line", "idx", "type", "id", "session_id", "user_code", "share_code", "contact_id", "target", "category",
                   "ip_address", "user_agent", "referrer", "ts", "ts2")
FLOOR_STAGING = """
CREATE TEMPORARY TABLE floor_staging (
    line integer, idx integer, type text, id uuid, session_id text, user_code text, share_code text, contact_id uuid,
    target text, category text, ip_address text, user_agent text, referrer text, ts timestamptz, ts2 timestamptz)
"""
# The floor: what landing a checked batch needs at least, set-based, nothing more.
FLOOR = [
    """INSERT INTO analytics_sessions AS t
              (session_id, user_code, share_code, contact_id, first_seen, last_seen, page_views, clicks,
               ip_address, user_agent, referrer)
       SELECT o.session_id,
              coalesce(max(o.user_code) FILTER (WHERE o.type = 'session'), max(o.user_code)),
              coalesce(max(o.share_code) FILTER (WHERE o.type = 'session'), max(o.share_code)),
              coalesce(max(o.contact_id::text) FILTER (WHERE o.type = 'session'), max(o.contact_id::text))::uuid,
              min(o.ts), max(coalesce(o.ts2, o.ts)),
              (count(*) FILTER (WHERE o.type = 'page_view'))::integer, (count(*) FILTER (WHERE o.type = 'click'))::integer,
              max(o.ip_address) FILTER (WHERE o.type = 'session'), max(o.user_agent) FILTER (WHERE o.type = 'session'),
              max(o.referrer) FILTER (WHERE o.type = 'session')
         FROM floor_staging AS o
        GROUP BY o.session_id
        ORDER BY o.session_id COLLATE "C"
       ON CONFLICT (session_id) DO UPDATE
          SET user_code = coalesce(t.user_code, EXCLUDED.user_code), share_code = coalesce(t.share_code, EXCLUDED.share_code),
              contact_id = coalesce(t.contact_id, EXCLUDED.contact_id), first_seen = least(t.first_seen, EXCLUDED.first_seen),
              last_seen = greatest(t.last_seen, EXCLUDED.last_seen), page_views = t.page_views + EXCLUDED.page_views,
              clicks = t.clicks + EXCLUDED.clicks, ip_address = coalesce(t.ip_address, EXCLUDED.ip_address),
              user_agent = coalesce(t.user_agent, EXCLUDED.user_agent), referrer = coalesce(t.referrer, EXCLUDED.referrer)""",
    """INSERT INTO analytics_page_views (id, session_id, user_code, share_code, contact_id, page_type, viewed_at)
       SELECT o.id, o.session_id, o.user_code, o.share_code, o.contact_id, o.target, o.ts
         FROM floor_staging AS o WHERE o.type = 'page_view'
       ON CONFLICT (id) DO NOTHING""",
    """INSERT INTO analytics_clicks (id, session_id, user_code, share_code, contact_id, click_target, click_category, clicked_at)
       SELECT o.id, o.session_id, o.user_code, o.share_code, o.contact_id, o.target, o.category, o.ts
         FROM floor_staging AS o WHERE o.type = 'click'
       ON CONFLICT (id) DO NOTHING""",
]
COPY_FLOOR = sql.SQL("COPY floor_staging ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in STAGING_COLUMNS))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_events(paths: list[Path], events: int, per_line: int, now: datetime, days: int, seed: int, prefix: str) -> int:
    """`events` sample events of the last `days` days, `per_line` a line, spread over
    `paths` in about equal parts of whole lines; returns the number of lines."""
    sessions_per_day = max(events // (6 * days), 10)
    total_lines = -(-events // per_line)
    per_file = -(-total_lines // len(paths))
    lines = written = 0
    outs = [path.open("w") for path in paths]
    try:
        batch: list[str] = []
        for event in sample_events(now=now, days=days, sessions_per_day=sessions_per_day * 2, seed=seed, prefix=prefix):
            batch.append(json.dumps(event))
            written += 1
            if len(batch) == per_line or written == events:
                outs[min(lines // per_file, len(outs) - 1)].write('{"events": [' + ", ".join(batch) + "]}\n")
                lines += 1
                batch = []
            if written == events:
                break
    finally:
        for out in outs:
            out.close()
    if written < events:
        raise SystemExit(f"the sample gave {written} events, fewer than {events}")
    return lines


def floor_batches(conn: psycopg.Connection, path: Path, batch_events: int) -> list[tuple[bytes, int]]:
    """Per batch of the ingest (the same cut), its checked rows as the ingest stages them:
    lines COPYed and checked by `analytics_ingest_check()` in a transaction that is rolled
    back, the staging table copied out first (binary COPY data, rows)."""
    out = []
    copy_out = sql.SQL("COPY (SELECT {} FROM pg_temp.analytics_ingest_staging) TO STDOUT (FORMAT BINARY)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in STAGING_COLUMNS))
    ingest_stream.prepare(conn)
    with path.open("rb") as handle:
        for batch in ingest_stream.batches(ingest_stream.read_source(handle), batch_events):
            with conn.transaction(force_rollback=True), conn.cursor() as cur:
                with cur.copy(ingest_stream.COPY_LINES) as copy:
                    copy.write(batch.payload())
                checked = cur.execute("SELECT analytics_ingest_check()").fetchone()[0]  # type: ignore[index]
                if checked["recorded"]:
                    raise SystemExit(f"sample events refused: {checked['refused'][:3]}")
                data = bytearray()
                with cur.copy(copy_out) as copy:
                    for block in copy:
                        data += block
            out.append((bytes(data), int(checked["staged"])))
    return out


def run_floor(conn: psycopg.Connection, payloads: list[tuple[bytes, int]]) -> float:
    """Seconds of the floor statements only: each batch is COPYed into staging first, untimed."""
    spent = 0.0
    for payload, _ in payloads:
        conn.execute("TRUNCATE floor_staging")
        with conn.cursor() as cur, cur.copy(COPY_FLOOR) as copy:
            copy.write(payload)
        started = time.perf_counter()
        with conn.transaction():
            # as analytics_ingest_staged: the counters are in the upsert, not the counter trigger
            conn.execute("SELECT set_config('trackschema.analytics_ingest_batch', 'floor', true)")
            for statement in FLOOR:
                conn.execute(statement, prepare=True)
        spent += time.perf_counter() - started
    return spent


def run_ingest(conn: psycopg.Connection, path: Path, batch_events: int) -> tuple[float, ingest.IngestSummary]:
    summary = ingest.IngestSummary(source=str(path))
    started = time.perf_counter()
    with path.open("rb") as handle:
        ingest.ingest_handle(conn, handle, summary, batch_events=batch_events)
    return time.perf_counter() - started, summary


def peak_rss(url: str, path: Path, batch_events: int, folder: Path) -> tuple[float, dict[str, object]]:
    """(peak RSS in MB, the summary) of `python -m trackschema ingest PATH --json`: the
    highest VmHWM of the process while it runs. (wait4's ru_maxrss would include this
    process's own size, which the child has until its exec.)"""
    env = {**os.environ, "TRACKSCHEMA_DATABASE_URL": url, "PYTHONPATH": str(ROOT / "src")}
    out_path, err_path = folder / "rss.out", folder / "rss.err"
    peak_kb = 0
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "trackschema", "ingest", str(path), "--json",
                                 "--batch-events", str(batch_events)], stdout=out, stderr=err, env=env, cwd=ROOT)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for row in status.read_text().splitlines():
                    if row.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(row.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"trackschema ingest failed: {err_path.read_text()[-2000:]}")
    return peak_kb / 1024, json.loads(out_path.read_text())


RAW_TABLES = ("analytics_sessions", "analytics_page_views", "analytics_clicks")
RAW_INDEXES = """
SELECT c.relname AS table, i.indexrelname AS index, i.idx_scan, pg_relation_size(i.indexrelid) AS bytes
  FROM pg_stat_user_indexes i JOIN pg_class c ON c.oid = i.relid
 WHERE c.relname IN ('analytics_sessions', 'analytics_page_views', 'analytics_clicks')
 ORDER BY 1, 2
"""


def index_review(url: str, path: Path, reader_users: int = 5) -> dict[str, object]:
    """The evidence for the index review, on a database at 0070 (all the indexes before it):
    a realistic run (the events landed by analytics_ingest per line, the days rolled up,
    dashboards of the heaviest users over today and the last 7 days, retention purging the
    oldest day, the analytics_dashboard view refreshed) after a statistics reset; then the
    scans of every index of the raw tables and the index audit's findings on them."""
    with psycopg.connect(url, autocommit=True) as conn:
        with path.open("rb") as handle:
            for raw in handle:
                conn.execute("SELECT analytics_ingest(%s::jsonb)", (raw.decode(),))
        conn.execute("ANALYZE")
        conn.execute("SELECT pg_stat_reset()")
        days = rollups.aggregate_pending(conn)
        today = db_today(conn)
        users = [r[0] for r in conn.execute(
            "SELECT user_code FROM analytics_sessions GROUP BY 1 ORDER BY count(*) DESC LIMIT %s", (reader_users,)).fetchall()]
        for user in users:
            for first in (today, today - timedelta(days=7)):
                dashboard.dashboard(conn, user, first, today)
        purged = retention.apply_retention(conn, days=1)
        conn.execute("REFRESH MATERIALIZED VIEW analytics_dashboard")
        time.sleep(1.0)  # statistics reach the shared counters at the end of each transaction, flushed within a second
        scans = [dict(zip(("table", "index", "scans", "bytes"), r)) for r in conn.execute(RAW_INDEXES).fetchall()]
        findings = [f for f in audit_indexes_on(conn) if f.table.split(".")[-1] in
                    {"analytics_sessions", "analytics_page_views", "analytics_clicks"}]
    return {"aggregated_days": len(days), "dashboards": len(users) * 2, "purged_page_views": purged.page_views,
            "index_scans": scans, "findings": [{"kind": f.kind, "table": f.table, "index": f.index, "detail": f.detail,
                                                "fix": f.fix} for f in findings]}


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds of a server process of this machine (None when it is elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase_cpu(server_url: str, path: Path, batch_events: int, after: str) -> dict[str, float] | None:
    """Where the server's time goes: backend CPU per event of each step of the ingest (COPY of
    the lines, analytics_ingest_check, analytics_ingest_land) on one connection, one step after
    the other, and of the floor, on two fresh databases. None when the server runs elsewhere."""
    urls = [create_database(server_url, name, upgrade_to=after) for name in ("bench_ingest_cpu_a", "bench_ingest_cpu_b")]
    with psycopg.connect(urls[0], autocommit=True) as conn, psycopg.connect(urls[1], autocommit=True) as floor:
        pid, floor_pid = conn.info.backend_pid, floor.info.backend_pid
        if _backend_cpu(pid) is None:
            return None
        floor.execute(FLOOR_STAGING)
        payloads = floor_batches(floor, path, batch_events)
        ingest_stream.prepare(conn)
        used = {"copy": 0.0, "check": 0.0, "land": 0.0, "floor": 0.0}
        events = 0
        with path.open("rb") as handle:
            for batch, (payload, _) in zip(ingest_stream.batches(ingest_stream.read_source(handle), batch_events), payloads):
                with conn.transaction(), conn.cursor() as cur:
                    marks = [_backend_cpu(pid) or 0.0]
                    with cur.copy(ingest_stream.COPY_LINES) as copy:
                        copy.write(batch.payload())
                    marks.append(_backend_cpu(pid) or 0.0)
                    events += cur.execute("SELECT analytics_ingest_check()").fetchone()[0]["events"]  # type: ignore[index]
                    marks.append(_backend_cpu(pid) or 0.0)
                    cur.execute("SELECT analytics_ingest_land()")
                    marks.append(_backend_cpu(pid) or 0.0)
                for step, a, b in zip(("copy", "check", "land"), marks, marks[1:]):
                    used[step] += b - a
                floor.execute("TRUNCATE floor_staging")
                with floor.cursor() as cur, cur.copy(COPY_FLOOR) as copy:
                    copy.write(payload)
                before = _backend_cpu(floor_pid) or 0.0
                with floor.transaction():
                    floor.execute("SELECT set_config('trackschema.analytics_ingest_batch', 'floor', true)")
                    for statement in FLOOR:
                        floor.execute(statement, prepare=True)
                used["floor"] += (_backend_cpu(floor_pid) or 0.0) - before
    for url_name in ("bench_ingest_cpu_a", "bench_ingest_cpu_b"):
        drop_database(server_url, url_name)
    return {k: round(v / events * 1e6, 1) for k, v in used.items()}


def counters_ok(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        """SELECT count(*) FROM analytics_sessions s
            WHERE s.page_views <> (SELECT count(*) FROM analytics_page_views p WHERE p.session_id = s.session_id)
               OR s.clicks <> (SELECT count(*) FROM analytics_clicks c WHERE c.session_id = s.session_id)"""
    ).fetchone()
    return row is not None and row[0] == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events ingested (and landed by the floors)")
    parser.add_argument("--events-per-line", type=int, default=1000, help="events per line (batch) of the ingested file")
    parser.add_argument("--rss-lines", type=int, default=1_000_000, help="lines of the file whose peak RSS is measured (one event a line)")
    parser.add_argument("--batch-events", type=int, default=ingest.IngestOptions().batch_events, help="events per transaction")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of ingest, floor and floor before")
    parser.add_argument("--days", type=int, default=3, help="days of traffic the events span")
    parser.add_argument("--after", default="head", help="the revision of the ingest and floor databases")
    parser.add_argument("--quick", action="store_true", help="100k events and a 100k-line RSS file: under a minute")
    parser.add_argument("--review", action="store_true",
                        help="only the index review's evidence: a realistic run at 0070, index scans and audit findings")
    parser.add_argument("--database-url", help="a server where the benchmark may create databases (default: a throwaway one)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rss_lines, args.rounds = min(args.events, 100_000), min(args.rss_lines, 100_000), min(args.rounds, 3)
    started = time.perf_counter()
    server = provision(args.database_url)
    if args.review:
        try:
            url = create_database(server.url, "bench_ingest_review", upgrade_to=BEFORE)
            with psycopg.connect(url, autocommit=True) as conn:
                now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
                path = Path(tmp) / "events.jsonl"
                write_events([path], args.events, args.events_per_line, now, args.days, seed=5, prefix="bench")
                review = index_review(url, path)
            drop_database(server.url, "bench_ingest_review")
        finally:
            server.stop()
        for row in review["index_scans"]:  # type: ignore[union-attr]
            log(f"  {row['table']:22s} {row['index']:38s} scans {row['scans']:>8,}  {row['bytes']:>12,} bytes")
        for f in review["findings"]:  # type: ignore[union-attr]
            log(f"  {f['kind']}: {f['table']} {f['index']} {f['detail']}")
        print(json.dumps(review, default=str))
        return
    names = {"ingest": "bench_ingest_ingest", "floor": "bench_ingest_floor", "before": "bench_ingest_before",
             "rss": "bench_ingest_rss", "cpu_a": "bench_ingest_cpu_a", "cpu_b": "bench_ingest_cpu_b"}
    try:
        log(f"server: {server.detail}")
        urls = {"ingest": create_database(server.url, names["ingest"], upgrade_to=args.after)}
        urls["floor"] = create_database(server.url, names["floor"], upgrade_to=args.after)
        urls["before"] = create_database(server.url, names["before"], upgrade_to=BEFORE)
        urls["rss"] = create_database(server.url, names["rss"], upgrade_to=args.after)
        with psycopg.connect(urls["ingest"], autocommit=True) as conn:
            now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
            folder = Path(tmp)
            chunks = [folder / f"chunk{r}.jsonl" for r in range(args.rounds)]
            lines = write_events(chunks, args.events, args.events_per_line, now, args.days, seed=5, prefix="bench")
            rss_file = folder / "rss.jsonl"
            rss_lines = write_events([rss_file], args.rss_lines, 1, now, args.days, seed=6, prefix="rss")
            size = sum(c.stat().st_size for c in chunks)
            log(f"{args.events:,} events in {lines:,} lines ({size / 1e6:,.0f} MB), {args.rounds} rounds; "
                f"RSS file: {rss_lines:,} lines ({rss_file.stat().st_size / 1e6:,.0f} MB)")

            conns = {k: psycopg.connect(urls[k], autocommit=True) for k in ("ingest", "floor", "before")}
            for key in ("floor", "before"):
                conns[key].execute(FLOOR_STAGING)
            for conn in conns.values():  # no autovacuum of one database while another is timed: VACUUM between rounds
                for table in RAW_TABLES:
                    conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(sql.Identifier(table)))
            spent = {"ingest": 0.0, "floor": 0.0, "before": 0.0}
            rounds: list[dict[str, float]] = []
            landed = 0
            for r, chunk in enumerate(chunks):
                payloads = floor_batches(conns["floor"], chunk, args.batch_events)
                order = ["ingest", "floor", "before"][r % 3:] + ["ingest", "floor", "before"][:r % 3]
                this = {}
                for key in order:
                    if key == "ingest":
                        seconds, summary = run_ingest(conns["ingest"], chunk, args.batch_events)
                        if summary.rejected or summary.accepted != summary.events:
                            raise SystemExit(f"the ingest refused sample events: {summary.rejects[:3]}")
                        landed += summary.accepted
                    else:
                        seconds = run_floor(conns[key], payloads)
                    spent[key] += seconds
                    this[key] = seconds
                for conn in conns.values():
                    conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(", ").join(sql.Identifier(t) for t in RAW_TABLES)))
                rounds.append({"ratio": round(this["floor"] / this["ingest"], 3), "floor_gain": round(this["before"] / this["floor"], 3),
                               "load_1min": round(os.getloadavg()[0], 2)})
                log(f"  round {r + 1}/{args.rounds}: ingest {this['ingest']:.1f}s, floor {this['floor']:.1f}s, "
                    f"floor before {this['before']:.1f}s: ratio {rounds[-1]['ratio']:.3f}, load {rounds[-1]['load_1min']}")
            for key, conn in conns.items():
                if not counters_ok(conn):
                    raise SystemExit(f"session counters differ from the rows in the {key} database")
            rows = [conns[k].execute("SELECT (SELECT count(*) FROM analytics_page_views), (SELECT count(*) FROM analytics_clicks), "
                                     "(SELECT count(*) FROM analytics_sessions)").fetchone() for k in ("ingest", "floor", "before")]
            if len(set(rows)) != 1:
                raise SystemExit(f"the three databases do not hold the same rows: {rows}")
            for conn in conns.values():
                conn.close()

            rss_mb, rss_summary = peak_rss(urls["rss"], rss_file, args.batch_events, folder)
            cpu = phase_cpu(server.url, chunks[0], args.batch_events, args.after)
    finally:
        for name in names.values():
            try:
                drop_database(server.url, name)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        server.stop()

    events = args.events
    figures = {
        "ingest_events_per_s": round(events / spent["ingest"]),
        "floor_events_per_s": round(events / spent["floor"]),
        "ratio": round(spent["floor"] / spent["ingest"], 3),
        "floor_before_events_per_s": round(events / spent["before"]),
        "floor_gain": round(spent["before"] / spent["floor"], 3),
        "peak_rss_mb": round(rss_mb, 1),
        "events": events,
        "events_per_line": args.events_per_line,
        "lines": lines,
        "batch_events": args.batch_events,
        "rounds": args.rounds,
        "rss_lines": rss_lines,
        "rss_events_per_s": rss_summary.get("events_per_second"),
        "rounds_detail": rounds,
        "server_cpu_us_per_event": cpu,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    log(f"ingest        {figures['ingest_events_per_s']:>9,} events/s  (trackschema ingest: parse, check, COPY, land)")
    log(f"floor         {figures['floor_events_per_s']:>9,} events/s  (set-based INSERT ... SELECT from loaded staging, same schema)")
    log(f"ratio         {figures['ratio']:>9.3f}         goal >= 0.9")
    log(f"floor before  {figures['floor_before_events_per_s']:>9,} events/s  (the same floor at {BEFORE})")
    log(f"floor gain    {figures['floor_gain']:>9.3f}         goal >= 1.3")
    log(f"peak RSS      {figures['peak_rss_mb']:>9.1f} MB      {rss_lines:,}-line file, goal <= 200 MB")
    if cpu:
        log("server CPU per event, one connection, nothing overlapped: " + ", ".join(f"{k} {v} us" for k, v in cpu.items()))
    log(f"load average  {figures['load_average']} on {figures['cpus']} CPUs; {figures['seconds']}s in all")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
