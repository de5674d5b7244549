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
    committed row, every error, and the longest single insert."""

    def __init__(self, url: str, statement: str, params: Callable[[int], dict[str, object]], pause: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.url, self.statement, self.params, self.pause = url, statement, params, pause
        self.ids: list[uuid.UUID] = []
        self.errors: list[str] = []
        self.longest = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            n = 0
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    row = conn.execute(self.statement, self.params(n)).fetchone()
                    assert row is not None
                    self.ids.append(row[0])
                except psycopg.Error as exc:  # recorded: the test asserts there are none
                    self.errors.append(str(exc).splitlines()[0])
                self.longest = max(self.longest, time.monotonic() - started)
                n += 1
                if self.pause:
                    time.sleep(self.pause)

    def finish(self) -> "Writer":
        self.stop.set()
        self.join(30)
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
