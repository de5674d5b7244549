"""The Citus layout of the analytics tables at revision 0101_citus_analytics, as data.

Revision 0100 left the analytics tables local (docs/citus.md#layout says why); 0101 places
them: the ownership table `analytics_user_code_owners` a reference table (the reader
policies look a user code up in it on every shard), the raw tables and the daily roll-ups
distributed by `user_code` in one co-location group led by `analytics_sessions` (a
session, its page views and clicks, and a user's roll-up rows share one shard). Every
primary key gains `user_code` in front; the foreign keys of the page views and clicks to
their session become `(user_code, session_id)` (`FOREIGN_KEYS_0101`).

The legacy tables (`analytics_events`, its
archive) and `trackschema.*` stay local, as 0100 declared them.
Frozen for revision 0101, like `LAYOUT_0100` for 0100; `LAYOUT_HEAD` is the layout at head
(0100's entries, the ones 0101 places replaced).
"""

from __future__ import annotations

from dataclasses import dataclass

from trackschema.citus.layout import LAYOUT_0100, Key, Placement

SESSIONS = "public.analytics_sessions"
OWNERS = "public.analytics_user_code_owners"

RAW_TABLES = ("public.analytics_sessions", "public.analytics_page_views", "public.analytics_clicks")
ROLLUP_TABLES = ("public.analytics_daily_user_stats", "public.analytics_daily_group_stats",
                 "public.analytics_daily_page_stats", "public.analytics_daily_click_targets")


@dataclass(frozen=True)
class ReshapedForeignKey:
    """A foreign key whose columns change on Citus (a co-located key must include the
    distribution column): its definition at 0100 (`before`) and on Citus (`after`)."""

    table: str
    name: str
    before: str
    after: str


def _pk(table: str, before: str) -> Key:
    return Key(f"{table}_pkey", (before,), ("user_code", before))


LAYOUT_0101: tuple[Placement, ...] = (
    Placement(OWNERS, "reference",
              "read by every reader policy (analytics_may_read) on every shard: a copy on every node"),
    Placement(SESSIONS, "distributed",
              "raw: grows without bound; a session and its events on one shard; PK (user_code, session_id)",
              column="user_code", keys=(_pk("analytics_sessions", "session_id"),)),
    Placement("public.analytics_page_views", "distributed", "raw: with their session; PK (user_code, id)",
              column="user_code", colocate_with=SESSIONS, keys=(_pk("analytics_page_views", "id"),)),
    Placement("public.analytics_clicks", "distributed", "raw: with their session; PK (user_code, id)",
              column="user_code", colocate_with=SESSIONS, keys=(_pk("analytics_clicks", "id"),)),
    Placement("public.analytics_daily_user_stats", "distributed",
              "roll-up: aggregate_analytics_daily writes a user's row next to the user's raw rows",
              column="user_code", colocate_with=SESSIONS, keys=(_pk("analytics_daily_user_stats", "id"),)),
    Placement("public.analytics_daily_group_stats", "distributed", "roll-up (as analytics_daily_user_stats)",
              column="user_code", colocate_with=SESSIONS, keys=(_pk("analytics_daily_group_stats", "id"),)),
    Placement("public.analytics_daily_page_stats", "distributed", "roll-up (as analytics_daily_user_stats)",
              column="user_code", colocate_with=SESSIONS, keys=(_pk("analytics_daily_page_stats", "id"),)),
    Placement("public.analytics_daily_click_targets", "distributed", "roll-up (as analytics_daily_user_stats)",
              column="user_code", colocate_with=SESSIONS, keys=(_pk("analytics_daily_click_targets", "id"),)),
)

FOREIGN_KEYS_0101: tuple[ReshapedForeignKey, ...] = tuple(
    ReshapedForeignKey(
        f"public.{table}", f"{table}_session_id_fkey",
        "FOREIGN KEY (session_id) REFERENCES analytics_sessions(session_id) ON DELETE CASCADE",
        "FOREIGN KEY (user_code, session_id) REFERENCES analytics_sessions(user_code, session_id) ON DELETE CASCADE")
    for table in ("analytics_page_views", "analytics_clicks"))

_PLACED_0101 = {p.table: p for p in LAYOUT_0101}
LAYOUT_HEAD: tuple[Placement, ...] = tuple(_PLACED_0101.get(p.table, p) for p in LAYOUT_0100)
