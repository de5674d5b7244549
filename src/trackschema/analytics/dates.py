"""Day arithmetic for the analytics jobs: every day is a UTC day, as in the SQL functions.

"Today" is always the database server's UTC date (`db_today`), never this machine's clock:
the SQL functions that split closed days from today read the server's `now()`, and the two
clocks may disagree around midnight (see docs/time.md).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import psycopg

from trackschema.errors import TrackschemaError
from trackschema.operations.inputs import Count, Day, InputError


def db_today(conn: psycopg.Connection) -> date:
    """Today in UTC by the server's clock (the clock the SQL functions use)."""
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    return row[0]


def db_now(conn: psycopg.Connection) -> datetime:
    """The server's `now()` (the start of the current transaction), as an aware datetime."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


def parse_day(text: str, what: str = "date", *, today: date) -> date:
    """`YYYY-MM-DD`, `today` or `yesterday` (relative to `today`), or a one-line error saying so."""
    value = str(text).strip().lower()
    if value == "today":
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise TrackschemaError(f"bad {what} {text!r}: write it as YYYY-MM-DD (or today, yesterday)") from None


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` through `last`, both included (empty when first > last)."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]



MAX_WINDOW_DAYS = 3660  # ten years of days: a dashboard over more is a typo


def day_window(today: date, days: int, first: str | None = None, last: str | None = None) -> tuple[date, date]:
    """The days `first` through `last`, both included: `last` defaults to `today` and
    `first` to `days` days back from `last` (so `days=1` is `last` alone). Every input is
    checked (a day from 2000-01-01, at most MAX_WINDOW_DAYS days) before any query."""
    Count(1, MAX_WINDOW_DAYS).parse("--days", days)
    last_day = parse_day(Day().parse("--to", last), "--to date", today=today) if last else today
    first_day = parse_day(Day().parse("--from", first), "--from date", today=today) if first else last_day - timedelta(days=days - 1)
    if first_day > last_day:
        raise TrackschemaError(f"empty date range: {first_day} is after {last_day}")
    if (last_day - first_day).days >= MAX_WINDOW_DAYS:
        raise InputError(f"bad --from {first_day}: the window {first_day} … {last_day} spans more than {MAX_WINDOW_DAYS:,} days")
    return first_day, last_day
