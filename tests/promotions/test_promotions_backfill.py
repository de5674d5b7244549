"""The backfill engine against real PostgreSQL: batches, checkpoints, resume after Ctrl-C
and kill -9, concurrent application writers, lock timeouts, rejects, table rewrites."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest

from tests.conftest import ROOT, make_settings, run_cli
from tests.observe import wait_until, watcher
from tests.promotion_helpers import (  # noqa: F401 - fixtures
    BAD_VALUES, UPDATED_AT_STANDIN, diverged, econn, expanded_db_url, expanded_template, load_legacy_rows, needing_rows, unfilled,
)
from trackschema.jobs import registry as jobs
from trackschema.migrations import runner as migrate
from trackschema.promotions import backfill
from trackschema.promotions.backfill import BACKFILL_LOCK_CLASS, BackfillError, BackfillOptions

FAST = BackfillOptions(batch_time=0.03, first_batch_rows=300)


def batches(conn: psycopg.Connection) -> list[tuple[int, int, int]]:
    return conn.execute("SELECT first_page, end_page, rows_done FROM trackschema.backfill_batches ORDER BY first_page").fetchall()  # type: ignore[return-value]


def assert_contiguous(conn: psycopg.Connection, end_page: int) -> None:
    """Committed batches tile pages [0, end_page) exactly once: nothing skipped, nothing twice."""
    pages = batches(conn)
    assert pages[0][0] == 0 and pages[-1][1] == end_page
    assert all(a[1] == b[0] for a, b in zip(pages, pages[1:]))


def test_backfill_fills_rejects_and_checkpoints(expanded_db_url: str, econn: psycopg.Connection) -> None:
    need = load_legacy_rows(econn, 4_000)
    assert needing_rows(econn) == need
    seen: list[backfill.BackfillProgress] = []
    result = backfill.run(make_settings(expanded_db_url), None, FAST, seen.append)
    run = result.tables[0]
    assert run.status == "completed" and run.rows_total == need and run.rows_done == need
    assert run.rows_rejected == len(BAD_VALUES) and run.batches > 3
    assert seen[0].rows_done == 0 and seen[0].rows_total == need
    assert seen[-1].finished and seen[-1].rows_remaining == 0
    assert [p.rows_done for p in seen] == sorted(p.rows_done for p in seen)
    assert all(p.eta_seconds is not None for p in seen[2:])
    assert sum(b[2] for b in batches(econn)) == need
    assert_contiguous(econn, run.end_page)
    assert diverged(econn) == 0 and unfilled(econn) == 0
    reasons = dict(econn.execute("SELECT promotion || ':' || (value::text), reason FROM trackschema.promotion_rejects").fetchall())
    for metadata, promotion, reason in BAD_VALUES:
        assert reason in reasons[f"{promotion}:{json.dumps(next(iter(metadata.values())))}"]
    again = backfill.run(make_settings(expanded_db_url), None, FAST).tables[0]
    assert again.status == "nothing to do" and again.rows_done == 0


def test_interrupted_run_resumes_without_redoing_or_skipping(expanded_db_url: str, econn: psycopg.Connection) -> None:
    need = load_legacy_rows(econn, 4_000)

    def stop_after_three(p: backfill.BackfillProgress) -> None:
        if p.batches == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill.run(make_settings(expanded_db_url), None, FAST, stop_after_three)
    done = sum(b[2] for b in batches(econn))
    assert 0 < done < need and needing_rows(econn) == need - done
    rest = backfill.run(make_settings(expanded_db_url), None, FAST).tables[0]
    assert set(rest.resumed) == {"source_type", "source_roadmap_item_id", "source_itinerary_item_id"}
    assert rest.rows_total == need - done and rest.rows_done == need - done
    assert sum(b[2] for b in batches(econn)) == need
    assert_contiguous(econn, rest.end_page)
    assert diverged(econn) == 0 and unfilled(econn) == 0


def test_kill_9_mid_backfill_then_rerun(expanded_db_url: str, econn: psycopg.Connection) -> None:
    """kill -9 of a running `trackschema backfill run`: its batch in flight rolls back with
    it; the rerun finishes from the checkpoint: 0 diverged rows, no batch counted twice.

    The kill lands at a point the test observes, not after a sleep: a statement trigger
    makes every batch after the fourth committed one wait for an advisory lock the test
    holds, inside the batch's transaction (its UPDATE done, not committed). The test kills
    the process once pg_locks shows it waiting there."""
    need = load_legacy_rows(econn, 12_000)
    econn.execute("""
        CREATE FUNCTION hold_after_four_batches() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT count(*) FROM trackschema.backfill_batches) >= 4 THEN
                PERFORM pg_advisory_xact_lock(90909);
            END IF;
            RETURN NULL;
        END $$""")
    econn.execute("CREATE TRIGGER hold_after_four AFTER UPDATE ON context_events FOR EACH STATEMENT EXECUTE FUNCTION hold_after_four_batches()")
    econn.execute("SELECT pg_advisory_lock(90909)")
    # Batches grow up to 2x when they run faster than --batch-time, so on a fast machine
    # 12,000 rows from a 2,000-row start take only 3 batches and the fifth never comes.
    # A ceiling of a tenth of the table's pages makes at least ten batches at any speed.
    pages = econn.execute("SELECT pg_relation_size('context_events') / current_setting('block_size')::int").fetchone()[0]
    most_pages = max(1, pages // 10)
    env = {**os.environ, "TRACKSCHEMA_DATABASE_URL": expanded_db_url, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "trackschema", "backfill", "run", "--batch-time", "40ms",
           "--first-batch-rows", "200", "--max-batch-pages", str(most_pages)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while not econn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 90909 AND NOT granted)"
        ).fetchone()[0]:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the backfill never reached its fifth batch"
            time.sleep(0.02)
        committed_batches = econn.execute("SELECT count(*) FROM trackschema.backfill_batches").fetchone()[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        econn.execute("SELECT pg_advisory_unlock(90909)")
    econn.execute("DROP TRIGGER hold_after_four ON context_events")
    assert committed_batches == 4 and len(batches(econn)) == 4  # the blocked fifth batch rolled back
    committed = sum(b[2] for b in batches(econn))
    assert 0 < committed < need
    # the rerun needs no process of its own (the killed one was): the same command in-process
    rerun = run_cli(*cmd[3:], "--json", env={"TRACKSCHEMA_DATABASE_URL": expanded_db_url}, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    table = json.loads(rerun.stdout)["tables"][0]
    assert table["resumed"] and table["rows_done"] == need - committed
    assert sum(b[2] for b in batches(econn)) == need
    assert_contiguous(econn, table["end_page"])
    assert diverged(econn) == 0 and unfilled(econn) == 0


# Polls: often, with a deadline far beyond what any machine needs.
POLL, DEADLINE = 0.01, 90.0


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"after {DEADLINE:g}s: {what}"
        time.sleep(POLL)


def _writer(url: str, ids: list[str], items: list[str], stop: threading.Event, errors: list[BaseException], counts: list[int], seed: int) -> None:
    """An application: single-row inserts and updates, on the JSON side, on the promoted
    columns, and on other columns (which move rows the backfill may not have reached).
    Counts its committed statements in counts[seed] (one slot per writer)."""
    rnd = random.Random(seed)
    sources = ["guardrails", "trip", "planner", "fax", 7]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                op = rnd.randrange(7)
                row = rnd.choice(ids)
                if op == 0:
                    md = {"source": rnd.choice(sources), "roadmap_item_id": rnd.choice(items + ["nope"])}
                    conn.execute("INSERT INTO context_events (context_id, created_by, title, start_at, metadata) "
                                 "VALUES (gen_random_uuid(), gen_random_uuid(), 'w', now(), %s)", (json.dumps(md),))
                elif op == 1:
                    conn.execute("INSERT INTO context_events (context_id, created_by, title, start_at, source_type, source_itinerary_item_id) "
                                 "VALUES (gen_random_uuid(), gen_random_uuid(), 'w', now(), 'trip', %s)", (str(uuid.uuid4()),))
                elif op == 2:
                    conn.execute("UPDATE context_events SET metadata = metadata || jsonb_build_object('source', %s::jsonb) WHERE id = %s",
                                 (json.dumps(rnd.choice(sources)), row))
                elif op == 3:
                    conn.execute("UPDATE context_events SET source_type = %s WHERE id = %s", (rnd.choice(["trip", "planner", None]), row))
                elif op == 4:
                    conn.execute("UPDATE context_events SET source_itinerary_item_id = %s, metadata = metadata || jsonb_build_object('itinerary_item_id', %s::text) WHERE id = %s",
                                 (str(uuid.uuid4()), str(uuid.uuid4()), row))
                elif op == 5:
                    conn.execute("UPDATE context_events SET metadata = metadata - 'roadmap_item_id' WHERE id = %s", (row,))
                else:  # another column only: the row moves, maybe behind the backfill's position
                    conn.execute("UPDATE context_events SET title = title || '.' WHERE id = %s", (row,))
                counts[seed] += 1
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


WRITES_BETWEEN_BATCHES = 25


def test_four_concurrent_writers_during_a_backfill_leave_nothing_diverged(expanded_db_url: str, econn: psycopg.Connection) -> None:
    """Four writers run before, during and after a backfill of ten batches at least. That
    they write during it is made true, not hoped for: after counting and after each
    committed batch, the backfill's progress hook waits until the writers have committed
    WRITES_BETWEEN_BATCHES more statements before the next batch starts."""
    load_legacy_rows(econn, 12_000)
    ids = [str(r[0]) for r in econn.execute("SELECT id FROM context_events").fetchall()]
    items = [str(r[0]) for r in econn.execute("SELECT id FROM roadmap_items").fetchall()]
    # at least ten batches at any speed: a ceiling of a tenth of the table's pages
    pages = econn.execute("SELECT pg_relation_size('context_events') / current_setting('block_size')::int").fetchone()[0]  # type: ignore[index]
    options = BackfillOptions(batch_time=0.05, first_batch_rows=300, max_batch_pages=max(1, pages // 10))
    stop, errors, counts = threading.Event(), [], [0, 0, 0, 0]
    writers = [threading.Thread(target=_writer, args=(expanded_db_url, ids, items, stop, errors, counts, seed)) for seed in range(4)]
    waits: list[int] = []

    def writers_write_between_batches(p: backfill.BackfillProgress) -> None:
        if not p.finished:
            target = sum(counts) + WRITES_BETWEEN_BATCHES
            _wait_until(lambda: sum(counts) >= target or bool(errors), f"the writers did not write after batch {p.batches}")
            waits.append(p.batches)

    for w in writers:
        w.start()
    try:
        _wait_until(lambda: all(counts) or bool(errors), "the writers did not start writing")
        before = sum(counts)
        result = backfill.run(make_settings(expanded_db_url), None, options, writers_write_between_batches)
        during = sum(counts) - before
        after = sum(counts)
        _wait_until(lambda: sum(counts) >= after + WRITES_BETWEEN_BATCHES or bool(errors), "the writers did not write after the backfill")
    finally:
        stop.set()
        for w in writers:
            w.join(DEADLINE)
    assert not errors, errors[0]
    run = result.tables[0]
    assert run.status == "completed" and run.batches >= 10
    assert waits == list(range(run.batches + 1))  # the hook held every gap: after counting, after each batch
    assert during >= WRITES_BETWEEN_BATCHES * len(waits) > 100, during  # the writers really wrote while the batches ran
    assert diverged(econn) == 0 and unfilled(econn) == 0


def test_a_batch_blocked_by_a_row_lock_is_retried_smaller(expanded_db_url: str, econn: psycopg.Connection) -> None:
    """A session holds a row lock of the first page. It lets go only once pg_locks has
    shown the backfill waiting for it in two different transactions: the first attempt
    gave up after its lock timeout and the batch was retried, at any machine speed."""
    need = load_legacy_rows(econn, 3_000)
    holder = psycopg.connect(expanded_db_url)
    holder.execute("SELECT 1 FROM context_events WHERE ctid = '(0,1)' FOR UPDATE")
    attempts_seen: set[str] = set()  # virtual transaction ids of backfill transactions seen waiting

    def release_after_a_retry() -> None:
        with psycopg.connect(expanded_db_url, autocommit=True) as watching:
            def seen_twice() -> bool:
                attempts_seen.update(r[0] for r in watching.execute(
                    """SELECT l.virtualtransaction FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                        WHERE a.application_name = 'trackschema-backfill' AND a.datname = current_database() AND NOT l.granted"""
                ))
                return len(attempts_seen) >= 2

            wait_until(seen_twice, "the backfill waiting for the row lock in two transactions")

    try:
        with watcher(release_after_a_retry, release=holder.rollback):
            # a lock timeout of 250ms: each waiting attempt stays in pg_locks long enough to be seen
            run = backfill.run(make_settings(expanded_db_url), None, BackfillOptions(batch_time=0.05, lock_timeout=0.25, max_retries=100)).tables[0]
    finally:
        holder.close()
    assert run.retries >= len(attempts_seen) - 1 >= 1 and run.rows_done == need
    assert diverged(econn) == 0 and unfilled(econn) == 0


def test_a_table_rewrite_starts_a_new_pass(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 4_000)

    def stop_after_two(p: backfill.BackfillProgress) -> None:
        if p.batches == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill.run(make_settings(expanded_db_url), None, FAST, stop_after_two)
    econn.execute("VACUUM FULL context_events")  # ctids change: page positions mean nothing now
    run = backfill.run(make_settings(expanded_db_url), None, FAST).tables[0]
    assert run.passes == {"source_type": 2, "source_roadmap_item_id": 2, "source_itinerary_item_id": 2}
    assert run.first_page == 0 and not run.resumed
    assert diverged(econn) == 0 and unfilled(econn) == 0


def test_backfill_leaves_updated_at_alone(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 1_000, bad=False)
    econn.execute(UPDATED_AT_STANDIN)
    before = econn.execute("SELECT max(updated_at) FROM context_events").fetchone()[0]  # type: ignore[index]
    backfill.run(make_settings(expanded_db_url), ["source_type"], FAST)
    assert econn.execute("SELECT max(updated_at), count(source_type) FROM context_events").fetchone() == (before, 750)


def test_one_backfill_per_table(expanded_db_url: str, econn: psycopg.Connection) -> None:
    with psycopg.connect(expanded_db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext('context_events'))", (BACKFILL_LOCK_CLASS,))
        with pytest.raises(BackfillError, match="already running in pid"):
            backfill.run(make_settings(expanded_db_url), None, BackfillOptions(lock_wait=0.3))


def test_after_contract_the_batch_records_rejects_itself(expanded_db_url: str, econn: psycopg.Connection) -> None:
    migrate.upgrade(make_settings(expanded_db_url), "head")
    assert not econn.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'context_events_promote_metadata'").fetchone()
    need = load_legacy_rows(econn, 2_000)
    ghost = str(uuid.uuid4())
    econn.execute("INSERT INTO context_events (context_id, created_by, title, start_at, metadata) "
                  "VALUES (gen_random_uuid(), gen_random_uuid(), 'g', now(), %s)", (json.dumps({"roadmap_item_id": ghost}),))
    run = backfill.run(make_settings(expanded_db_url), None, FAST).tables[0]
    assert not run.dual_write and run.reference_checked
    assert run.rows_rejected == len(BAD_VALUES) + 1 and run.rows_done == need + 1
    reason = econn.execute("SELECT reason FROM trackschema.promotion_rejects WHERE value = %s", (json.dumps(ghost),)).fetchone()
    assert reason and reason[0] == f"no roadmap_items row has id {ghost}"
    assert diverged(econn, reference_checked=True) == 0 and unfilled(econn) == 0


def test_the_backfill_job(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 1_000)
    run = jobs.run(make_settings(expanded_db_url), "promotion-backfill", {"names": "source_type", "batch_time": "30ms"})
    assert run.status == "succeeded"
    assert run.result and run.result["tables"][0]["promotions"] == ["source_type"]
    assert econn.execute("SELECT count(*) FROM context_events WHERE metadata ? 'source' AND source_type IS NULL").fetchone()[0] == 3  # type: ignore[index]


def test_promotions_resumed_from_different_pages_each_cover_every_page_once(expanded_db_url: str, econn: psycopg.Connection) -> None:
    """A run for one promotion stopped halfway, then a run for all: the pages each promotion
    was filled on still tile the table exactly once, and batches join up where they meet."""
    need = load_legacy_rows(econn, 4_000)

    def stop_after_two(p: backfill.BackfillProgress) -> None:
        if p.batches == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill.run(make_settings(expanded_db_url), ["source_type"], FAST, stop_after_two)
    run = backfill.run(make_settings(expanded_db_url), None, FAST).tables[0]
    assert run.resumed == ["source_type"] and run.status == "completed"
    for name in ("source_type", "source_roadmap_item_id", "source_itinerary_item_id"):
        ranges = econn.execute(
            "SELECT first_page, end_page FROM trackschema.backfill_batches WHERE %s = ANY(promotions) ORDER BY first_page", (name,)
        ).fetchall()
        # each pass ends where the table ended when that pass began (later pages only hold
        # rows written through the trigger, the earlier run's own updates among them)
        end = econn.execute("SELECT end_page FROM trackschema.backfill_checkpoints WHERE promotion = %s", (name,)).fetchone()[0]  # type: ignore[index]
        assert ranges[0][0] == 0 and ranges[-1][1] == end
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])), name
    assert sum(b[2] for b in batches(econn)) == need
    assert diverged(econn) == 0 and unfilled(econn) == 0


def test_retry_rejects_promotes_a_reference_that_exists_now(expanded_db_url: str, econn: psycopg.Connection) -> None:
    migrate.upgrade(make_settings(expanded_db_url), "0021_promotion_validate")
    ghost = str(uuid.uuid4())
    econn.execute("ALTER TABLE context_events DISABLE TRIGGER context_events_promote_metadata")
    row = econn.execute("INSERT INTO context_events (context_id, created_by, title, start_at, metadata) "
                        "VALUES (gen_random_uuid(), gen_random_uuid(), 'g', now(), %s) RETURNING id", (json.dumps({"roadmap_item_id": ghost}),)).fetchone()[0]  # type: ignore[index]
    econn.execute("ALTER TABLE context_events ENABLE TRIGGER context_events_promote_metadata")
    first = backfill.run(make_settings(expanded_db_url), ["source_roadmap_item_id"], FAST).tables[0]
    assert first.reference_checked and first.rows_rejected == 1
    econn.execute("INSERT INTO roadmap_items (id, master_project_id, title) VALUES (%s, gen_random_uuid(), 'restored')", (ghost,))
    assert backfill.run(make_settings(expanded_db_url), ["source_roadmap_item_id"], FAST).tables[0].status == "nothing to do"
    again = backfill.run(make_settings(expanded_db_url), ["source_roadmap_item_id"], BackfillOptions(retry_rejects=True)).tables[0]
    assert again.rows_done == 1 and again.rows_rejected == 0
    assert econn.execute("SELECT source_roadmap_item_id::text FROM context_events WHERE id = %s", (row,)).fetchone() == (ghost,)
    assert econn.execute("SELECT count(*) FROM trackschema.promotion_rejects").fetchone() == (0,)
