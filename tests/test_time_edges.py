"""The edges of time: UTC defines every day and every month (docs/time.md).

Each check runs in sessions whose TimeZone is not UTC (New York, with DST, and Kolkata,
at +05:30) and places rows at the edges nearest to the server's clock: the first and
last microsecond of a month, 31 Dec -> 1 Jan, 29 Feb, a DST change. The edges are
derived from the server's now(), read once per test, so the same test runs at any date;
`.ci/run` also runs this module (marker `clock`) at 1 Jan 00:05, 28 Feb 23:55 of a leap
year and the last minute of a 30-day month, where "now" itself sits on an edge.
"""

from __future__ import annotations

import calendar
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from tests.analytics_helpers import ingest, page_view, session
from tests.conftest import make_settings, run_cli
from tests.partition_helpers import months_since_built
from trackschema.migrations import runner as migrate
from trackschema.partitions import monthly as partitions
from trackschema.analytics import dashboard, rollups
from trackschema.analytics.dates import db_now

pytestmark = pytest.mark.clock

ZONES = ["America/New_York", "Asia/Kolkata"]
MICROSECOND = timedelta(microseconds=1)
NEW_YORK = ZoneInfo("America/New_York")


def month_start(instant: datetime) -> datetime:
    return instant.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def previous_month(start: datetime) -> datetime:
    return start.replace(year=start.year - (start.month == 1), month=(start.month - 2) % 12 + 1)


def last_new_year(now: datetime) -> datetime:
    """The latest 1 Jan 00:00 UTC at or before `now`."""
    return datetime(now.year, 1, 1, tzinfo=timezone.utc)


def last_leap_day(now: datetime) -> datetime:
    """00:00 UTC of the latest 29 Feb that has begun by `now`."""
    year = now.year
    while not (calendar.isleap(year) and datetime(year, 2, 29, tzinfo=timezone.utc) <= now):
        year -= 1
    return datetime(year, 2, 29, tzinfo=timezone.utc)


def last_thirty_day_month_end(now: datetime) -> datetime:
    """The end (the next month's start) of the latest 30-day month that has ended by `now`."""
    start = previous_month(month_start(now))
    while (next_month(start) - start).days != 30:
        start = previous_month(start)
    return next_month(start)


def last_dst_change(now: datetime) -> datetime:
    """The latest instant at or before `now` where New York's UTC offset changed."""
    hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    while hour.astimezone(NEW_YORK).utcoffset() == (hour - timedelta(hours=1)).astimezone(NEW_YORK).utcoffset():
        hour -= timedelta(hours=1)
    return hour


def edge_instants(now: datetime) -> dict[str, datetime]:
    """Instants on both sides of every edge nearest to `now`, none after it."""
    edges = {
        "month": month_start(now),
        "new year": last_new_year(now),
        "30-day month end": last_thirty_day_month_end(now),
        "dst change": last_dst_change(now),
    }
    leap = last_leap_day(now)
    instants = {f"{name} -1us": edge - MICROSECOND for name, edge in edges.items()}
    instants.update({f"{name} +0": edge for name, edge in edges.items()})
    instants.update({"leap day +0": leap, "leap day end -1us": leap + timedelta(days=1) - MICROSECOND,
                     "leap day end +0": leap + timedelta(days=1), "now": now})
    return instants


def replace_history_by_months(conn: psycopg.Connection, first: datetime, table: str = "activity_log") -> None:
    """Drop the (empty) history partition of `table`, then give every UTC month from
    `first` up to the current one its own partition (the current one and those ahead
    exist already on a fresh database)."""
    history = conn.execute(
        "SELECT history_partition FROM trackschema.partitioned_tables WHERE parent_name = %s", (table,)
    ).fetchone()
    assert history is not None
    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
        sql.Identifier(table), sql.Identifier(history[0])))
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(history[0])))
    conn.execute(
        """SELECT trackschema.partition_create(%(t)s::regclass, m, m + interval '1 month')
             FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz, interval '1 month') AS m
            WHERE NOT EXISTS (SELECT 1 FROM trackschema.partition_bounds(%(t)s::regclass) b
                               WHERE NOT b.is_default AND b.lower_bound <= m AND m < b.upper_bound)""",
        {"t": table, "first": first, "last": month_start(db_now(conn))},
    )


def set_zone(conn: psycopg.Connection, zone: str) -> None:
    conn.execute("SELECT set_config('TimeZone', %s, false)", (zone,))


@pytest.mark.parametrize("zone", ZONES)
def test_every_row_lands_in_the_partition_of_its_utc_month(conn: psycopg.Connection, zone: str) -> None:
    now = db_now(conn)
    instants = edge_instants(now)
    replace_history_by_months(conn, min(month_start(t) for t in instants.values()))
    set_zone(conn, zone)
    for label, instant in instants.items():
        # the same instant written twice: as an aware value, and as text in the session zone's
        # wall-clock time with its offset (without the offset, the hour a DST change repeats
        # is ambiguous and PostgreSQL reads the later one: docs/time.md)
        local_text = instant.astimezone(ZoneInfo(zone)).isoformat()
        rows = conn.execute(
            """INSERT INTO activity_log (action, occurred_at) VALUES (%(l)s, %(t)s), (%(l)s, %(text)s::timestamptz)
               RETURNING occurred_at, tableoid::regclass::text""",
            {"l": label, "t": instant, "text": local_text},
        ).fetchall()
        # compared in UTC: Python never calls an instant of a repeated DST hour equal to one in another zone
        assert [r[0].astimezone(timezone.utc) for r in rows] == [instant, instant], label
        home = conn.execute(
            """SELECT partition::text, lower_bound, upper_bound FROM trackschema.partition_bounds('activity_log'::regclass)
                WHERE NOT is_default AND lower_bound <= %(t)s AND %(t)s < upper_bound""",
            {"t": instant},
        ).fetchone()
        assert home is not None, label
        assert rows[0][1] == rows[1][1] == home[0], label
        assert home[1] == month_start(instant) and home[2] == next_month(month_start(instant)), label
    # no partition of any table straddles a UTC month boundary
    for table in ("activity_log", "analytics_events"):
        for _, lower, upper in conn.execute(
            "SELECT partition, lower_bound, upper_bound FROM trackschema.partition_bounds(%s::regclass) WHERE NOT is_default AND lower_bound IS NOT NULL",
            (table,),
        ).fetchall():
            lower_utc = lower.astimezone(timezone.utc)
            assert lower_utc == month_start(lower) and upper == next_month(lower_utc), (table, lower, upper)


@pytest.mark.parametrize("zone", ZONES)
def test_a_fresh_database_has_the_current_utc_month_and_three_ahead(empty_db_url: str, zone: str) -> None:
    """Migrated by a client whose session zone is not UTC: months are still UTC months."""
    url = f"{empty_db_url}?options=-c%20TimeZone%3D{zone.replace('/', '%2F')}"
    migrate.upgrade(make_settings(url), "head")
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SHOW TimeZone").fetchone() == (zone,)
        with conn.transaction():  # one now() for the whole check
            this_month = month_start(db_now(conn))
            health = {h.parent: h for h in partitions.health(conn)}
            # 3 ahead of the month it was migrated in (fewer if midnight passed since)
            ahead = 3 - months_since_built(conn)
            for table in ("activity_log", "analytics_events"):
                assert health[table].months_ahead == ahead, table
                # this month: the history partition (the table's rows before conversion,
                # up to the end of the month it was converted in) or a partition of its own
                bounds = conn.execute(
                    """SELECT lower_bound, upper_bound FROM trackschema.partition_bounds(%s::regclass)
                        WHERE NOT is_default AND upper_bound > %s ORDER BY upper_bound""",
                    (table, this_month),
                ).fetchall()
                assert bounds[0][0] is None or bounds[0][0].astimezone(timezone.utc) == this_month, table
                expected, month = [], this_month
                for _ in range(1 + ahead):
                    expected.append((month, next_month(month)))
                    month = next_month(month)
                assert [(lo.astimezone(timezone.utc) if lo else this_month, hi.astimezone(timezone.utc)) for lo, hi in bounds] \
                    == expected, table
            # a row written now lands in this month's partition, never in history or a default
            row = conn.execute(
                "INSERT INTO activity_log (action, occurred_at) VALUES ('now', now()) RETURNING tableoid::regclass::text"
            ).fetchone()
            assert row is not None
            home = conn.execute(
                """SELECT partition::text FROM trackschema.partition_bounds('activity_log'::regclass)
                    WHERE NOT is_default AND coalesce(lower_bound <= now(), true) AND now() < upper_bound"""
            ).fetchone()
            assert home == (row[0],)


@pytest.mark.parametrize("zone", ZONES)
def test_retire_cutoffs_are_instants_and_partitions_go_whole(db_url: str, conn: psycopg.Connection, zone: str) -> None:
    """--before with a local offset and --older-than from a non-UTC session both retire
    exactly the partitions whose UTC upper bound is at or before the cutoff."""
    now = db_now(conn)
    oldest = previous_month(previous_month(previous_month(month_start(now))))
    replace_history_by_months(conn, oldest)
    conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'x', g FROM generate_series(%s, now(), interval '6 hours') AS g",
                 (oldest,))
    second = next_month(oldest)
    env = {"TRACKSCHEMA_DATABASE_URL": db_url, "PGTZ": zone}
    # the oldest partition's upper bound written in the zone's wall-clock time: exact, so it goes
    local_bound = second.astimezone(ZoneInfo(zone)).isoformat()
    just_before = (second - MICROSECOND).astimezone(ZoneInfo(zone)).isoformat()
    dry = run_cli("partitions", "retire", "--before", just_before, "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["partitions"] == []
    dry = run_cli("partitions", "retire", "--before", local_bound, "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)["partitions"]
    assert [(datetime.fromisoformat(p["from"]), datetime.fromisoformat(p["to"])) for p in plan] == [(oldest, second)]

    # --older-than: the cutoff is now() minus the duration, an instant; what goes is every
    # partition whose upper bound is at or before it, whatever the session zone
    days = (now - second).days
    result = run_cli("partitions", "retire", "--older-than", f"{days}d", "--drop", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    cutoff = datetime.fromisoformat(report["cutoff"])
    assert second <= cutoff < second + timedelta(days=1) + timedelta(minutes=5)
    assert [datetime.fromisoformat(p["to"]) for p in report["partitions"]] == [second]
    left = conn.execute("SELECT min(lower_bound) FROM trackschema.partition_bounds('activity_log'::regclass) WHERE NOT is_default").fetchone()
    assert left == (second,)
    assert conn.execute("SELECT count(*) FROM activity_log WHERE occurred_at < %s", (second,)).fetchone() == (0,)


@pytest.mark.parametrize("zone", ZONES)
def test_a_roll_up_day_and_the_dashboards_today_are_utc_days(conn: psycopg.Connection, zone: str) -> None:
    """Events on both sides of two UTC midnights, sent with the zone's offset: the
    closed day is rolled up from 00:00 to 24:00 UTC, today comes from the raw rows."""
    set_zone(conn, zone)
    now = db_now(conn)
    today_start = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (today_start - timedelta(days=1)).date()
    local = ZoneInfo(zone)
    at = {  # label -> instant; every one at or before now
        "before yesterday": today_start - timedelta(days=1) - MICROSECOND,
        "yesterday first": today_start - timedelta(days=1),
        "yesterday last": today_start - MICROSECOND,
        "today first": today_start,
    }
    events = []
    for n, (label, instant) in enumerate(at.items()):
        sid = f"edge-{n}"
        events += [session(sid, "edge", instant.astimezone(local)), page_view(sid, "edge", instant.astimezone(local))]
    assert ingest(conn, events)["rejected"] == []
    assert conn.execute("SELECT count(*) FROM analytics_sessions WHERE user_code = 'edge'").fetchone() == (4,)

    done = {d.day: d for d in rollups.aggregate_pending(conn, until=yesterday + timedelta(days=1))}
    assert (done[yesterday].raw_sessions, done[yesterday].raw_page_views) == (2, 2)
    assert (done[yesterday - timedelta(days=1)].raw_sessions, done[yesterday - timedelta(days=1)].raw_page_views) == (1, 1)

    board = dashboard.dashboard(conn, "edge", yesterday - timedelta(days=1), today_start.date())
    by_day = {d.day: d for d in board.days}
    assert {day: (d.total_sessions, d.source) for day, d in by_day.items()} == {
        yesterday - timedelta(days=1): (1, "rollup"),
        yesterday: (2, "rollup"),
        today_start.date(): (1, "raw"),
    }


@pytest.mark.parametrize("zone", ZONES)
def test_ingest_reads_an_event_time_without_offset_as_utc(conn: psycopg.Connection, zone: str) -> None:
    set_zone(conn, zone)
    today_start = db_now(conn).astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    bare = (today_start - MICROSECOND).strftime("%Y-%m-%dT%H:%M:%S.%f")  # the last microsecond of yesterday, UTC
    event = session("bare", "bare", today_start)
    event["data"]["first_seen"] = bare
    assert ingest(conn, [event])["rejected"] == []
    row = conn.execute("SELECT first_seen, (first_seen AT TIME ZONE 'UTC')::date FROM analytics_sessions WHERE session_id = 'bare'").fetchone()
    assert row is not None
    assert row[0].astimezone(timezone.utc) == today_start - MICROSECOND
    assert row[1] == (today_start - timedelta(days=1)).date()


def test_the_edge_helpers_find_the_nearest_past_edges() -> None:
    now = datetime(2027, 4, 30, 23, 59, tzinfo=timezone.utc)
    assert last_new_year(now) == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert last_leap_day(now) == datetime(2024, 2, 29, tzinfo=timezone.utc)
    assert last_leap_day(datetime(2028, 2, 29, 0, 1, tzinfo=timezone.utc)) == datetime(2028, 2, 29, tzinfo=timezone.utc)
    assert last_leap_day(datetime(2028, 2, 28, 23, 55, tzinfo=timezone.utc)) == datetime(2024, 2, 29, tzinfo=timezone.utc)
    assert last_thirty_day_month_end(now) == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert last_thirty_day_month_end(datetime(2027, 5, 1, 0, 1, tzinfo=timezone.utc)) == datetime(2027, 5, 1, tzinfo=timezone.utc)
    # New York: EDT from 2027-03-14 07:00 UTC (02:00 EST), EST from 2026-11-01 06:00 UTC
    assert last_dst_change(now) == datetime(2027, 3, 14, 7, tzinfo=timezone.utc)
    assert last_dst_change(datetime(2027, 1, 1, tzinfo=timezone.utc)) == datetime(2026, 11, 1, 6, tzinfo=timezone.utc)
    # 1 Feb 03:00 in Kolkata is still 31 Jan in UTC: its month is January
    assert month_start(datetime(2027, 2, 1, 3, 0, tzinfo=ZoneInfo("Asia/Kolkata"))) == datetime(2027, 1, 1, tzinfo=timezone.utc)
