"""The kinds of input an operation takes, each with its parsing and its limits.

Every kind turns what a user typed (a CLI option, a `--param key=value`, a value from a
scheduler) into a typed value, or raises `InputError`: exit code 2, one line naming the
option, the value and what is allowed. Nothing has touched the database yet when that
happens: operations parse all their inputs before they connect.

Limits are there to refuse what cannot be meant, not to second-guess: a lock timeout of
0 would turn PostgreSQL's timeout off, a batch of 0 rows never finishes, a date before
2000 or a duration of centuries is a typo.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from trackschema.errors import TrackschemaError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Days trackschema works on: nothing it tracks predates 2000 (the ingest floor too).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2999, 12, 31)


class InputError(TrackschemaError):
    """A wrong input, refused before anything was touched (exit code 2)."""


def _shown(value: object, limit: int = 40) -> str:
    """The value as the message quotes it: never more than `limit` characters."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _seconds_text(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms"


@dataclass(frozen=True)
class Duration:
    """A duration with its unit (`500ms`, `5s`, `10min` or `10m`, `2h`, `90d`), in seconds.
    A bare number is refused: `90` could mean seconds or days."""

    minimum: float = 0.001
    maximum: float = 86400.0
    zero_allowed: bool = False

    def parse(self, option: str, value: Any) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            match = _DURATION.match(str(value))
            if not match:
                hint = f": give a unit, e.g. {str(value).strip()}s or {str(value).strip()}d" if re.fullmatch(r"\s*\d+(\.\d+)?\s*", str(value)) \
                    else ": write a number with ms, s, min, h or d (e.g. 5s, 10min, 90d)"
                raise InputError(f"bad {option} {_shown(value)}{hint}")
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if seconds == 0 and self.zero_allowed:
            return 0.0
        if not math.isfinite(seconds) or not self.minimum <= seconds <= self.maximum:
            low = "0 or " + _seconds_text(self.minimum) if self.zero_allowed else _seconds_text(self.minimum)
            raise InputError(f"bad {option} {_shown(value)}: give a duration from {low} to {_seconds_text(self.maximum)}")
        return seconds


@dataclass(frozen=True)
class Count:
    """A whole number from `minimum` to `maximum`."""

    minimum: int = 1
    maximum: int = 1_000_000

    def parse(self, option: str, value: Any) -> int:
        if isinstance(value, bool):
            raise InputError(f"bad {option} {_shown(value)}: give a whole number")
        try:
            number = value if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            raise InputError(f"bad {option} {_shown(value)}: give a whole number from {self.minimum} to {self.maximum:,}") from None
        if not self.minimum <= number <= self.maximum:
            raise InputError(f"bad {option} {_shown(value)}: give a whole number from {self.minimum} to {self.maximum:,}")
        return number


@dataclass(frozen=True)
class Flag:
    """true/false (also 1/0, yes/no, on/off)."""

    def parse(self, option: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InputError(f"bad {option} {_shown(value)}: give true or false")


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of words."""

    choices: tuple[str, ...]

    def parse(self, option: str, value: Any) -> str:
        text = str(value).strip()
        if text not in self.choices:
            raise InputError(f"bad {option} {_shown(value)}: choose one of {', '.join(self.choices)}")
        return text


@dataclass(frozen=True)
class Name:
    """A table or schema name (`name` or `schema.name`), as PostgreSQL spells unquoted ones."""

    def parse(self, option: str, value: Any) -> str:
        text = str(value).strip()
        if not _NAME.match(text):
            raise InputError(f"bad {option} {_shown(value)}: give a table or schema name such as activity_log or public.activity_log")
        return text


@dataclass(frozen=True)
class Names:
    """A comma-separated list of names; with `choices`, each must be one of them."""

    choices: tuple[str, ...] | None = None

    def parse(self, option: str, value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        names = tuple(dict.fromkeys(str(n).strip() for n in items if str(n).strip()))
        for name in names:
            if self.choices is not None and name not in self.choices:
                raise InputError(f"bad {option} {_shown(name)}: choose among {', '.join(self.choices)}")
            if self.choices is None:
                Name().parse(option, name)
        if not names:
            raise InputError(f"bad {option} {_shown(value)}: give at least one name")
        return names


@dataclass(frozen=True)
class Text:
    """Free text of printable characters, at most `max_length` of them."""

    max_length: int = 200

    def parse(self, option: str, value: Any) -> str:
        text = str(value).strip()
        if not text or len(text) > self.max_length or not text.isprintable():
            raise InputError(f"bad {option} {_shown(value)}: give 1 to {self.max_length} printable characters")
        return text


@dataclass(frozen=True)
class Day:
    """A UTC day: `YYYY-MM-DD`, `today` or `yesterday`. The relative words stay words here
    (resolved against the server's clock when the operation runs, see analytics.dates)."""

    def parse(self, option: str, value: Any) -> str:
        text = str(value).strip().lower()
        if text in {"today", "yesterday"}:
            return text
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InputError(f"bad {option} {_shown(value)}: write a day as YYYY-MM-DD (or today, yesterday)") from None
        if not FIRST_DAY <= day <= LAST_DAY:
            raise InputError(f"bad {option} {_shown(value)}: give a day from {FIRST_DAY} to {LAST_DAY}")
        return day.isoformat()


@dataclass(frozen=True)
class Instant:
    """A point in time in ISO 8601 with its UTC offset (`2026-01-01T00:00:00+00:00`, `Z` for
    UTC). An instant without an offset is refused: the server's and this machine's time
    zones may differ, and guessing moves a cutoff by hours."""

    def parse(self, option: str, value: Any) -> datetime:
        if isinstance(value, datetime):
            instant = value
        else:
            text = str(value).strip()
            try:
                instant = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            except ValueError:
                raise InputError(f"bad {option} {_shown(value)}: write an instant as 2026-01-01T00:00:00+00:00") from None
        if instant.tzinfo is None:
            raise InputError(f"bad {option} {_shown(value)}: add its UTC offset (e.g. {instant.isoformat()}+00:00)")
        if not FIRST_DAY.year <= instant.year <= LAST_DAY.year:
            raise InputError(f"bad {option} {_shown(value)}: give an instant from {FIRST_DAY} to {LAST_DAY}")
        return instant


@dataclass(frozen=True)
class Rate:
    """A fraction from 0 to 1, written `0.01` or `1%`."""

    def parse(self, option: str, value: Any) -> float:
        raw = str(value).strip()
        try:
            rate = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:  # also refuses nan
            raise InputError(f"bad {option} {_shown(value)}: write a fraction from 0 to 1 (0.01) or a percentage (1%)")
        return rate
