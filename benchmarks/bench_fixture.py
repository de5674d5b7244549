"""Per-test set-up of the `trackschema_db` fixture: clone the template, connect.

What a test pays before its first statement: `CREATE DATABASE ... TEMPLATE` on the
session's admin connection (`trackschema.testing.databases.Template.clone`, STRATEGY
FILE_COPY) and a new connection to the clone. Measured over N clones, median and p95, for
both strategies PostgreSQL 15 has (FILE_COPY: a checkpoint, then the files copied; WAL_LOG:
every block read through shared buffers and written to WAL), against the baseline a test
would pay without a template: `upgrade head` of an empty database, in the same run.

    python benchmarks/bench_fixture.py [--clones 50] [--url URL] [--disk] [--quick]

The server is the plugin's (`provision(fast=True)`: a local cluster's data in /dev/shm when
that is a tmpfs with room), or `--url`. `--disk` also measures a local cluster whose data
is on disk (the default place before `fast`), to show what the memory file system saves.
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from trackschema.migrations import runner as migrate
from trackschema.runtime.provision import PostgresServer, provision
from trackschema.runtime.settings import Settings
from trackschema.testing.databases import Admin, Template, fresh_name


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values) * 1000, 1), "p95_ms": round(p95(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1)}


def measure(server: PostgresServer, clones: int) -> dict[str, Any]:
    """The figures on one server: the template's size, set-up per strategy, checkpoint, baseline."""
    admin = Admin(server.url)
    template = Template(admin, fresh_name("bench_fixture_template"))
    try:
        started = time.perf_counter()
        template.current()
        build = time.perf_counter() - started
        conn = admin.connection()
        size = conn.execute("SELECT pg_database_size(%s)", (template.name,)).fetchone()[0]  # type: ignore[index]
        with psycopg.connect(admin.url(template.name)) as tconn:  # closed before the first clone
            relations = tconn.execute("SELECT count(*) FROM pg_class WHERE relfilenode <> 0").fetchone()[0]  # type: ignore[index]

        setups: dict[str, list[float]] = {"file_copy": [], "wal_log": []}
        creates: dict[str, list[float]] = {"file_copy": [], "wal_log": []}
        connects: list[float] = []
        for _ in range(clones):
            for strategy, times in setups.items():
                name = fresh_name("bench_fixture_clone")
                started = time.perf_counter()
                if strategy == "file_copy":
                    db = template.clone(name)  # what trackschema_db does
                    url = db.url
                else:
                    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY WAL_LOG").format(
                        sql.Identifier(name), sql.Identifier(template.current())))
                    url = admin.url(name)
                created = time.perf_counter()
                with psycopg.connect(url, autocommit=True) as test_conn:
                    test_conn.execute("SELECT 1")
                    connected = time.perf_counter()
                times.append(connected - started)
                creates[strategy].append(created - started)
                connects.append(connected - created)
                admin.drop(name)

        checkpoints = []
        for _ in range(max(3, clones // 5)):
            started = time.perf_counter()
            conn.execute("CHECKPOINT")
            checkpoints.append(time.perf_counter() - started)

        baseline = []
        for _ in range(1 if clones < 10 else 3):
            name = fresh_name("bench_fixture_upgrade")
            url = admin.create(name)
            started = time.perf_counter()
            migrate.upgrade(Settings(database_url=url), "head")
            baseline.append(time.perf_counter() - started)
            admin.drop(name)
        settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'full_page_writes', 'data_directory')").fetchall())
    finally:
        template.drop()
        admin.close()
    setup_median = statistics.median(setups["file_copy"])
    return {
        "server": server.detail, "data_directory": settings.get("data_directory", "?"), "fsync": settings.get("fsync"),
        "full_page_writes": settings.get("full_page_writes"), "clones": clones,
        "template_mb": round(size / 1024**2, 1), "template_relations": int(relations), "template_build_s": round(build, 2),
        "setup_file_copy": summary(setups["file_copy"]), "setup_wal_log": summary(setups["wal_log"]),
        "create_file_copy": summary(creates["file_copy"]), "create_wal_log": summary(creates["wal_log"]),
        "connect": summary(connects), "checkpoint": summary(checkpoints), "upgrade_head": summary(baseline),
        "upgrade_head_vs_setup": round(statistics.median(baseline) / setup_median, 1),
    }


def report(figures: dict[str, Any], label: str) -> None:
    f = figures
    print(f"[{label}] {f['server']}; data in {f['data_directory']} (fsync={f['fsync']}, full_page_writes={f['full_page_writes']})")
    print(f"[{label}] template: {f['template_mb']} MB, {f['template_relations']} relations with files, built in {f['template_build_s']} s")
    for strategy in ("file_copy", "wal_log"):
        s, c = f[f"setup_{strategy}"], f[f"create_{strategy}"]
        print(f"[{label}] set-up with {strategy.upper()} over {f['clones']} clones: median {s['median_ms']} ms, p95 {s['p95_ms']} ms "
              f"(CREATE DATABASE median {c['median_ms']} ms, p95 {c['p95_ms']} ms)")
    print(f"[{label}] connect median {f['connect']['median_ms']} ms; CHECKPOINT alone median {f['checkpoint']['median_ms']} ms")
    print(f"[{label}] baseline upgrade head of an empty database: median {f['upgrade_head']['median_ms']} ms; "
          f"ratio upgrade head / set-up: {f['upgrade_head_vs_setup']}x")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clones", type=int, default=50, help="clones per strategy (default 50)")
    parser.add_argument("--url", help="a PostgreSQL server URL (else provision(fast=True) starts one)")
    parser.add_argument("--disk", action="store_true", help="also measure a local cluster whose data is on disk")
    parser.add_argument("--quick", action="store_true", help="3 clones per strategy (the test suite's smoke run)")
    args = parser.parse_args(argv)
    clones = 3 if args.quick else args.clones
    results: dict[str, Any] = {}
    server = provision(args.url, fast=True)
    try:
        results["fast"] = measure(server, clones)
    finally:
        server.stop()
    report(results["fast"], "fast")
    if args.disk and not args.url:
        server = provision(mode="local")
        try:
            results["disk"] = measure(server, clones)
        finally:
            server.stop()
        report(results["disk"], "disk")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
