"""A user's analytics dashboard over a range of UTC days, in real time.

The SQL functions (`analytics_dashboard_daily/pages/clicks/shares`) read closed days that
have been aggregated since they ended from the roll-up tables and every other day (today
above all) from the raw tables; `DailyStats.source` says which served a day. They run with
the caller's privileges, so a reader role sees only the user codes it owns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

import psycopg

from trackschema.analytics.dates import MAX_WINDOW_DAYS, day_window, db_today
from trackschema.operations.inputs import Count, Day, Text
from trackschema.operations.options import Options, option
from trackschema.runtime.db import connect
from trackschema.errors import TrackschemaError
from trackschema.runtime.settings import Settings


@dataclass(frozen=True)
class DailyStats:
    day: date
    total_sessions: int
    total_page_views: int
    total_clicks: int
    unique_share_codes: list[str]
    source: str  # "rollup" or "raw"


@dataclass(frozen=True)
class PageStat:
    page_type: str
    view_count: int


@dataclass(frozen=True)
class ClickTarget:
    click_target: str
    click_category: str | None
    click_count: int


@dataclass(frozen=True)
class ShareStat:
    share_code: str | None
    total_sessions: int
    total_page_views: int
    total_clicks: int


@dataclass(frozen=True)
class Dashboard:
    user_code: str
    first: date
    last: date
    days: list[DailyStats] = field(default_factory=list)
    pages: list[PageStat] = field(default_factory=list)
    clicks: list[ClickTarget] = field(default_factory=list)
    shares: list[ShareStat] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return {
            "sessions": sum(d.total_sessions for d in self.days),
            "page_views": sum(d.total_page_views for d in self.days),
            "clicks": sum(d.total_clicks for d in self.days),
            "days_from_rollups": sum(1 for d in self.days if d.source == "rollup"),
            "days_from_raw": sum(1 for d in self.days if d.source == "raw"),
        }

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["totals"] = self.totals
        return data


def dashboard(conn: psycopg.Connection, user_code: str, first: date, last: date) -> Dashboard:
    """The dashboard of `user_code` from `first` through `last` (UTC days, both included)."""
    if first > last:
        raise TrackschemaError(f"empty date range: {first} is after {last}")
    args = (user_code, first, last)
    days = [DailyStats(*r) for r in conn.execute("SELECT * FROM analytics_dashboard_daily(%s, %s, %s)", args).fetchall()]
    pages = [PageStat(*r) for r in conn.execute("SELECT * FROM analytics_dashboard_pages(%s, %s, %s)", args).fetchall()]
    clicks = [ClickTarget(*r) for r in conn.execute("SELECT * FROM analytics_dashboard_clicks(%s, %s, %s)", args).fetchall()]
    shares = [ShareStat(*r) for r in conn.execute("SELECT * FROM analytics_dashboard_shares(%s, %s, %s)", args).fetchall()]
    return Dashboard(user_code, first, last, days, pages, clicks, shares)


@dataclass(frozen=True)
class DashboardOptions(Options):
    """The window of `analytics dashboard` (see `analytics.dates.day_window`)."""

    operation = "analytics dashboard"
    days: int = option(Count(1, MAX_WINDOW_DAYS), 30, "The last N UTC days, today included.")
    first: str | None = option(Day(), None, "First day (YYYY-MM-DD); overrides --days.")
    last: str | None = option(Day(), None, "Last day (YYYY-MM-DD, default today, UTC, by the server's clock).")


def load_dashboard(settings: Settings, user_code: str, *, days: int = 30, first: str | None = None,
                   last: str | None = None) -> Dashboard:
    """The dashboard over `day_window(today, days, first, last)`, "today" being the server's
    UTC date, so the window and the SQL's today-from-raw split read the same clock."""
    user_code = Text(max_length=200).parse("USER_CODE", user_code)
    Count(1, MAX_WINDOW_DAYS).parse("--days", days)
    with connect(settings.require_url(), application_name="trackschema-dashboard") as conn:
        window = day_window(db_today(conn), days, first, last)
        return dashboard(conn, user_code, *window)
