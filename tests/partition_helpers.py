"""Helpers for the partitioning tests: concurrent writers and a monthly layout."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import psycopg
from psycopg import sql


class Writer(threading.Thread):
    """Inserts one row per transaction until stopped, remembering the id of every
    committed row, every error, and the longest single insert. `wait_for_rows` lets a
    test wait until the writer has committed a number of rows (a point it observes,
    instead of a sleep); `pid` is its backend, to look for in pg_locks."""

    def __init__(self, url: str, statement: str, params: Callable[[int], dict[str, object]], pause: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.url, self.statement, self.params, self.pause = url, statement, params, pause
        self.ids: list[uuid.UUID] = []
        self.errors: list[str] = []
        self.longest = 0.0
        self.pid: int | None = None
        self.stop = threading.Event()
        self._progress = threading.Condition()
        self._ended = False

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                self.pid = conn.info.backend_pid
                n = 0
                while not self.stop.is_set():
                    started = time.monotonic()
                    try:
                        row = conn.execute(self.statement, self.params(n)).fetchone()
                        assert row is not None
                        with self._progress:
                            self.ids.append(row[0])
                            self._progress.notify_all()
                    except psycopg.Error as exc:  # recorded: the test asserts there are none
                        self.errors.append(str(exc).splitlines()[0])
                    self.longest = max(self.longest, time.monotonic() - started)
                    n += 1
                    if self.pause:
                        time.sleep(self.pause)  # pacing only: no test outcome depends on it
        finally:
            with self._progress:
                self._ended = True
                self._progress.notify_all()

    def wait_for_rows(self, count: int, timeout: float = 90.0) -> None:
        """Block until this writer has committed at least `count` rows; fail clearly when
        it has not after `timeout` seconds (a deadline no machine comes near) or stopped."""
        with self._progress:
            self._progress.wait_for(lambda: len(self.ids) >= count or self._ended, timeout)
            if len(self.ids) < count:
                raise AssertionError(f"the writer committed {len(self.ids)} rows, not {count}; errors: {self.errors[:3]}")

    def wait_for_pid(self, timeout: float = 90.0) -> int:
        deadline = time.monotonic() + timeout
        while self.pid is None:
            assert not self._ended and time.monotonic() < deadline, "the writer never connected"
            time.sleep(0.01)
        return self.pid

    def finish(self) -> "Writer":
        self.stop.set()
        self.join(90)
        assert not self.is_alive(), "the writer is stuck in a statement"
        return self


def monthly_layout(conn: psycopg.Connection, table: str = "activity_log", months_back: int = 23) -> datetime:
    """Replace the (empty) history partition of `table` by one partition per month for
    the `months_back` months before the current one and the current month. Returns the
    lower bound of the oldest partition: tests place their rows from it up to now(), so
    no row falls before the layout whatever the day of the month."""
    history = conn.execute(
        "SELECT history_partition FROM trackschema.partitioned_tables WHERE parent_name = %s", (table,)
    ).fetchone()
    assert history is not None
    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(sql.Identifier(*table.split(".")), sql.Identifier(history[0])))
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(history[0])))
    conn.execute(
        """SELECT trackschema.partition_create(%s::regclass, m, m + interval '1 month')
             FROM generate_series(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => %s),
                                  date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') AS g(t),
                  LATERAL (SELECT g.t AT TIME ZONE 'UTC') AS s(m)""",
        (table, months_back),
    )
    row = conn.execute(
        "SELECT min(lower_bound) FROM trackschema.partition_bounds(%s::regclass) WHERE NOT is_default", (table,)
    ).fetchone()
    assert row is not None and row[0] is not None
    return row[0]


def months_since_built(conn: psycopg.Connection) -> int:
    """Whole UTC months from the month the database was migrated in (its history partition
    ends with that month) to now: 0 unless the run crossed a month boundary since."""
    row = conn.execute(
        """SELECT (extract(year FROM m) * 12 + extract(month FROM m))::int
                  - (extract(year FROM b) * 12 + extract(month FROM b))::int
             FROM (SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AS m,
                          (upper_bound AT TIME ZONE 'UTC') - interval '1 month' AS b
                     FROM trackschema.partition_bounds('analytics_events'::regclass)
                    WHERE lower_bound IS NULL AND NOT is_default) AS t"""
    ).fetchone()
    assert row is not None
    return int(row[0])
