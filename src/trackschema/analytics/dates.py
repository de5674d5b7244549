"""Day arithmetic for the analytics jobs: every day is a UTC day, as in the SQL functions."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from trackschema.errors import TrackschemaError


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def parse_day(text: str, what: str = "date") -> date:
    """`YYYY-MM-DD`, `today` or `yesterday` (UTC), or a one-line error saying so."""
    value = str(text).strip().lower()
    if value == "today":
        return utc_today()
    if value == "yesterday":
        return utc_today() - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise TrackschemaError(f"bad {what} {text!r}: write it as YYYY-MM-DD (or today, yesterday)") from None


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` through `last`, both included (empty when first > last)."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def positive_int(value: object, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise TrackschemaError(f"bad {what} {value!r}: give a whole number") from None
    if number <= 0:
        raise TrackschemaError(f"bad {what} {value!r}: it must be greater than 0")
    return number
