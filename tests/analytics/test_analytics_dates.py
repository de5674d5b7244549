"""analytics.dates: days from the server's clock, windows from an injected today."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from trackschema.analytics.dates import day_window, db_now, db_today, parse_day
from trackschema.errors import TrackschemaError

LEAP_DAY = date(2028, 2, 29)


def test_parse_day_reads_today_and_yesterday_from_the_given_today() -> None:
    assert parse_day("today", today=LEAP_DAY) == LEAP_DAY
    assert parse_day(" Yesterday ", today=date(2028, 3, 1)) == LEAP_DAY
    assert parse_day("yesterday", today=date(2027, 1, 1)) == date(2026, 12, 31)
    assert parse_day("2028-02-29", today=date(2000, 1, 1)) == LEAP_DAY
    with pytest.raises(TrackschemaError, match=r"bad --to date '2027-02-29': write it as YYYY-MM-DD"):
        parse_day("2027-02-29", "--to date", today=LEAP_DAY)


def test_day_window_counts_back_from_the_last_day_both_ends_included() -> None:
    assert day_window(date(2027, 1, 1), 1) == (date(2027, 1, 1), date(2027, 1, 1))
    assert day_window(date(2027, 1, 1), 3) == (date(2026, 12, 30), date(2027, 1, 1))
    assert day_window(date(2028, 3, 1), 2) == (LEAP_DAY, date(2028, 3, 1))
    assert day_window(date(2030, 1, 1), 30, last="2028-03-01") == (date(2028, 2, 1), date(2028, 3, 1))
    assert day_window(date(2030, 1, 1), 30, first="2028-02-28", last="2028-03-01") == (date(2028, 2, 28), date(2028, 3, 1))


@pytest.mark.parametrize(("days", "first", "last", "message"), [
    (0, None, None, "bad --days '0': give a whole number from 1 to 3,660"),
    (-3, None, None, "bad --days '-3'"),
    (30, "2028-03-02", "2028-03-01", "empty date range: 2028-03-02 is after 2028-03-01"),
    (30, "tomorrow", None, "bad --from 'tomorrow': write a day as YYYY-MM-DD"),
    (30, "1999-12-31", None, "bad --from '1999-12-31': give a day from 2000-01-01"),
    (30, "2010-01-01", "2028-03-01", "spans more than 3,660 days"),
])
def test_day_window_refuses_bad_input(days: int, first: str | None, last: str | None, message: str) -> None:
    with pytest.raises(TrackschemaError, match=message):
        day_window(LEAP_DAY, days, first, last)


@pytest.mark.clock
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_db_today_is_the_servers_utc_date_in_any_session_time_zone(conn: psycopg.Connection, zone: str) -> None:
    conn.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
    with conn.transaction():  # one now() for both: the two reads cannot straddle midnight UTC
        now = db_now(conn)
        today = db_today(conn)
    assert now.tzinfo is not None
    assert today == now.astimezone(timezone.utc).date()
    # the Python clock of the test run (libfaketime under ./run test --at) agrees within a minute
    assert abs(now - datetime.now(timezone.utc)) < timedelta(minutes=1)
