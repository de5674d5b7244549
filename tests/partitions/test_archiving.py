"""Atomic archiving of tracking rows (the archive-tracking job), under concurrent writes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import run_cli
from tests.partition_helpers import Writer
from trackschema.partitions import archive as archiving

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)

# goal_events: a tracking table archived by row moves (entity_events is partitioned since
# revision 0090 and leaves by partition; activity_log since 0030)
INSERT_OLD = (
    "INSERT INTO goal_events (goal_id, event_type, occurred_at) "
    "VALUES (gen_random_uuid(), 'UPDATE', now() - make_interval(days => %(d)s)) RETURNING id"
)
INSERT_NEW = "INSERT INTO goal_events (goal_id, event_type) VALUES (gen_random_uuid(), 'INSERT') RETURNING id"


def all_ids(conn: psycopg.Connection, table: str) -> list:
    return [r[0] for r in conn.execute(sql.SQL("SELECT id FROM {}").format(sql.Identifier(*table.split(".")))).fetchall()]


class BeforeEachBatch:
    """The job's connection, with a hook run before each batch statement. archive_rows
    runs one `WITH moved AS (DELETE ...) INSERT ...` per batch through `conn.execute`,
    with the cutoff among its parameters; everything else passes straight through."""

    def __init__(self, conn: psycopg.Connection, hook: Callable[[], None]) -> None:
        self.conn, self.hook, self.calls = conn, hook, 0

    def execute(self, query: Any, params: Any = None) -> Any:
        if isinstance(params, dict) and "cutoff" in params:
            self.calls += 1
            self.hook()
        return self.conn.execute(query, params)


def test_archiving_under_concurrent_old_row_inserts_is_exact(db_url: str, conn: psycopg.Connection) -> None:
    """Old rows arrive while the job runs by construction, not by luck: before each of its
    batches the job waits until the old-row writer has committed one more row."""
    conn.execute(
        """INSERT INTO goal_events (goal_id, event_type, occurred_at)
           SELECT gen_random_uuid(), 'SEED', now() - make_interval(mins => g * 13) FROM generate_series(1, 40000) AS g"""
    )
    seeded = set(all_ids(conn, "goal_events"))
    # old-timestamped rows keep arriving (days 91..400 back: all older than the cutoff), and new ones
    writers = [Writer(db_url, INSERT_OLD, lambda n: {"d": 91 + n % 310}), Writer(db_url, INSERT_NEW, lambda n: {})]
    for w in writers:
        w.start()
    cutoff = conn.execute("SELECT now() - interval '90 days'").fetchone()[0]
    results = []
    old_rows = writers[0]

    def one_more_old_row() -> None:
        old_rows.wait_for_rows(len(old_rows.ids) + 1)

    hooked: list[BeforeEachBatch] = []
    failures: list[BaseException] = []

    def archive() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as job_conn:
                hooked.append(BeforeEachBatch(job_conn, one_more_old_row))
                for _ in range(3):
                    results.append(archiving.archive_rows(hooked[0], "goal_events", "occurred_at", cutoff, batch_blocks=20))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    runner = threading.Thread(target=archive)
    runner.start()
    runner.join(300)
    assert not runner.is_alive(), "the archiving runs did not finish"
    for w in writers:
        w.finish()
    assert not failures, failures[0]
    # once the writers have stopped, one more run takes whatever arrived behind the cursor
    results.append(archiving.archive_rows(conn, "goal_events", "occurred_at", cutoff))

    assert [w.errors for w in writers] == [[], []]
    assert sum(r.batches for r in results) > 10, "the job worked in many batches"
    assert hooked[0].calls == sum(r.batches for r in results[:3])
    assert len(old_rows.ids) >= hooked[0].calls, "old rows kept arriving while the job ran, one at least before each batch"
    main, archived = all_ids(conn, "goal_events"), all_ids(conn, "goal_events_archive")
    assert len(main) == len(set(main)) and len(archived) == len(set(archived))
    assert not set(main) & set(archived), "no row is in both tables"
    written = {i for w in writers for i in w.ids}
    assert set(main) | set(archived) == seeded | written, "main + archive = every row"
    assert sum(r.moved for r in results) == len(archived)
    assert conn.execute("SELECT count(*) FROM goal_events WHERE occurred_at < %s", (cutoff,)).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM goal_events_archive WHERE occurred_at >= %s", (cutoff,)).fetchone() == (0,)
    # the archived rows are the rows, value for value
    same = conn.execute(
        """SELECT count(*) FROM goal_events_archive a
            WHERE a.event_type IN ('SEED', 'UPDATE') AND a.goal_id IS NOT NULL AND a.occurred_at < %s""",
        (cutoff,),
    ).fetchone()
    assert same == (len(archived),)


def test_job_archives_unpartitioned_tables_and_skips_partitioned_ones(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(
        """INSERT INTO goal_events (goal_id, event_type, occurred_at)
           SELECT gen_random_uuid(), 'progress', now() - make_interval(days => g) + interval '12 hours' FROM generate_series(1, 200) AS g"""
    )
    result = run_cli("jobs", "run", "archive-tracking", "--param", "older_than=100d", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    tables = {t["table"]: t for t in json.loads(result.stdout)["result"]["tables"]}
    assert tables["goal_events"]["moved"] == 100
    assert tables["entity_events"]["moved"] == 0 and "partitioned" in tables["entity_events"]["skipped"]
    assert "partitioned" in tables["activity_log"]["skipped"]
    assert conn.execute("SELECT count(*) FROM goal_events").fetchone() == (100,)
    assert conn.execute("SELECT count(*), max(occurred_at) < now() - interval '100 days' FROM goal_events_archive").fetchone() == (100, True)


def test_a_column_missing_from_the_archive_is_an_error_with_the_fix(conn: psycopg.Connection) -> None:
    conn.execute("ALTER TABLE goal_events ADD COLUMN weight numeric(6, 2)")
    conn.execute("INSERT INTO goal_events (goal_id, event_type, occurred_at) VALUES (gen_random_uuid(), 'x', now() - interval '1 year')")
    cutoff = conn.execute("SELECT now() - interval '90 days'").fetchone()[0]
    with pytest.raises(archiving.ArchiveError, match=r'ALTER TABLE "goal_events_archive" ADD COLUMN "weight" numeric\(6,2\)'):
        archiving.archive_rows(conn, "goal_events", "occurred_at", cutoff)
    assert conn.execute("SELECT count(*) FROM goal_events").fetchone() == (1,)
    conn.execute("ALTER TABLE goal_events_archive ADD COLUMN weight numeric(6, 2)")
    assert archiving.archive_rows(conn, "goal_events", "occurred_at", cutoff).moved == 1


def test_unknown_table_is_refused(db_url: str) -> None:
    result = run_cli("jobs", "run", "archive-tracking", "--param", "tables=contacts", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 2
    assert "bad --param tables 'contacts': choose among activity_log, entity_events, goal_events" in result.stderr
