"""The demo's tracking-and-queue step, on a database at head."""

from __future__ import annotations

import psycopg

from tests.conftest import make_settings
from trackschema import demo


def test_demo_step_tracks_changes_and_propagates_them(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
    detail, work = demo._tracking_and_queue(make_settings(db_url))
    # create (entity + contact), progress update, three touchpoints
    assert detail.startswith("6 entity events tracked; a queue worker completed 6 of them")
    assert detail.endswith("wrote 2 goal events and 2 achievements")
    assert work.completed == 6 and work.failed == 0
    assert conn.execute("SELECT count(*) FROM event_queue").fetchone()[0] == 0  # type: ignore[index]
