"""The dual-write trigger on context_events: column and metadata key stay in step on every
write, whichever side the application writes; bad JSON values never fail a write."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg import sql

from tests.conftest import make_settings
from tests.promotion_helpers import (  # noqa: F401 - fixtures
    BAD_VALUES, UPDATED_AT_STANDIN, VALIDATE, diverged, econn, ensure_roadmap_items, expanded_db_url, expanded_template,
)
from trackschema.migrations import runner as migrate

COLUMNS = sql.SQL("source_type, source_roadmap_item_id::text, source_itinerary_item_id::text, metadata")


def insert(conn: psycopg.Connection, metadata: dict | None = None, **columns: object) -> str:
    names = ["context_id", "created_by", "title", "start_at", "metadata", *columns]
    values = [str(uuid.uuid4()), str(uuid.uuid4()), "t", "2026-01-01", json.dumps(metadata or {}), *columns.values()]
    row = conn.execute(
        sql.SQL("INSERT INTO context_events ({}) VALUES ({}) RETURNING id").format(
            sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join([sql.Placeholder()] * len(values))
        ),
        values,
    ).fetchone()
    return str(row[0])  # type: ignore[index]


def fetch(conn: psycopg.Connection, row_id: str) -> tuple:
    return conn.execute(sql.SQL("SELECT {} FROM context_events WHERE id = %s").format(COLUMNS), (row_id,)).fetchone()  # type: ignore[return-value]


def rejects(conn: psycopg.Connection, row_id: str) -> dict[str, str]:
    return dict(conn.execute("SELECT promotion, reason FROM trackschema.promotion_rejects WHERE row_id = %s", (row_id,)).fetchall())


def test_json_write_fills_the_columns(econn: psycopg.Connection) -> None:
    item = ensure_roadmap_items(econn, 3)[0]
    trip = "0190A3C4-1111-7222-8333-444455556666"  # upper case: promoted, stored canonical
    row = insert(econn, {"source": "guardrails", "roadmap_item_id": item, "itinerary_item_id": trip, "other": 1})
    assert fetch(econn, row)[:3] == ("guardrails", item, trip.lower())
    bare = insert(econn, {"itinerary_item_id": trip.replace("-", "")})
    assert fetch(econn, bare)[2] == trip.lower()
    assert diverged(econn) == 0


def test_column_write_writes_the_key(econn: psycopg.Connection) -> None:
    item = ensure_roadmap_items(econn, 3)[1]
    row = insert(econn, {"other": 1}, source_type="trip", source_roadmap_item_id=item)
    source_type, roadmap, _, metadata = fetch(econn, row)
    assert (source_type, roadmap) == ("trip", item)
    assert metadata == {"other": 1, "source": "trip", "roadmap_item_id": item}


def test_one_write_setting_both_sides_differently_the_column_wins(econn: psycopg.Connection) -> None:
    """The documented conflict rule: the typed column wins and the key is rewritten."""
    row = insert(econn, {"source": "planner"}, source_type="trip")
    assert fetch(econn, row)[0] == "trip" and fetch(econn, row)[3]["source"] == "trip"
    econn.execute(
        "UPDATE context_events SET source_type = 'guardrails', metadata = metadata || '{\"source\": \"planner\"}' WHERE id = %s", (row,)
    )
    assert fetch(econn, row)[0] == "guardrails" and fetch(econn, row)[3]["source"] == "guardrails"


def test_updates_on_either_side_keep_them_in_step(econn: psycopg.Connection) -> None:
    row = insert(econn, {"source": "trip"})
    econn.execute("UPDATE context_events SET metadata = metadata || '{\"source\": \"planner\"}' WHERE id = %s", (row,))
    assert fetch(econn, row)[0] == "planner"  # the key changed: the column follows
    econn.execute("UPDATE context_events SET source_type = 'guardrails' WHERE id = %s", (row,))
    assert fetch(econn, row)[3]["source"] == "guardrails"  # the column changed: the key follows
    econn.execute("UPDATE context_events SET source_type = NULL WHERE id = %s", (row,))
    assert fetch(econn, row)[0] is None and "source" not in fetch(econn, row)[3]  # cleared column removes the key
    econn.execute("UPDATE context_events SET metadata = '{\"source\": \"trip\"}' WHERE id = %s", (row,))
    econn.execute("UPDATE context_events SET metadata = metadata - 'source' WHERE id = %s", (row,))
    assert fetch(econn, row)[0] is None  # removed key empties the column
    econn.execute("UPDATE context_events SET metadata = '{\"source\": null}' WHERE id = %s", (row,))
    assert fetch(econn, row)[0] is None and rejects(econn, row) == {}  # JSON null is "no value", not a reject
    econn.execute("UPDATE context_events SET title = 'only the title' WHERE id = %s", (row,))
    assert diverged(econn) == 0


def test_any_update_of_an_unbackfilled_row_fills_it(econn: psycopg.Connection) -> None:
    """An update of another column moves the row (a new version, maybe on a page the
    backfill has passed): the trigger fills it on the way, so no backfill can miss it."""
    econn.execute("ALTER TABLE context_events DISABLE TRIGGER context_events_promote_metadata")
    row = insert(econn, {"source": "trip", "itinerary_item_id": "0190a3c4-1111-7222-8333-444455556666"})
    econn.execute("ALTER TABLE context_events ENABLE TRIGGER context_events_promote_metadata")
    assert fetch(econn, row)[:3] == (None, None, None)
    econn.execute("UPDATE context_events SET title = 'renamed' WHERE id = %s", (row,))
    assert fetch(econn, row)[:3] == ("trip", None, "0190a3c4-1111-7222-8333-444455556666")


@pytest.mark.parametrize(("metadata", "promotion", "reason"), BAD_VALUES)
def test_a_bad_json_value_never_fails_the_write(econn: psycopg.Connection, metadata: dict, promotion: str, reason: str) -> None:
    row = insert(econn, metadata)  # must not raise
    column = {"source_type": 0, "source_roadmap_item_id": 1, "source_itinerary_item_id": 2}[promotion]
    assert fetch(econn, row)[column] is None
    assert fetch(econn, row)[3] == metadata  # the JSON is kept as written
    assert reason in rejects(econn, row)[promotion]
    # fixing the value fills the column; the stale reject no longer counts
    econn.execute("UPDATE context_events SET metadata = %s WHERE id = %s", (json.dumps({"source": "trip"}), row))
    assert diverged(econn) == 0


def test_a_write_succeeds_even_when_the_reject_cannot_be_recorded(econn: psycopg.Connection) -> None:
    econn.execute("ALTER TABLE trackschema.promotion_rejects RENAME TO promotion_rejects_away")
    warnings: list[str] = []
    econn.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
    row = insert(econn, {"source": "carrier pigeon"})
    assert fetch(econn, row)[0] is None
    assert any("could not record a reject" in w for w in warnings)


def test_copy_goes_through_the_trigger(econn: psycopg.Connection) -> None:
    item = ensure_roadmap_items(econn, 2)[0]
    with econn.cursor().copy("COPY context_events (context_id, created_by, title, start_at, metadata) FROM STDIN") as copy:
        for i in range(200):
            md = {"source": ["trip", "planner", "guardrails", "sms"][i % 4], "roadmap_item_id": item}
            copy.write_row((str(uuid.uuid4()), str(uuid.uuid4()), "c", "2026-01-01", json.dumps(md)))
    counts = econn.execute("SELECT count(source_type), count(source_roadmap_item_id) FROM context_events").fetchone()
    assert counts == (150, 200)
    assert econn.execute("SELECT count(*) FROM trackschema.promotion_rejects WHERE reason LIKE 'not an allowed value%'").fetchone()[0] == 50  # type: ignore[index]
    assert diverged(econn) == 0


def test_maintenance_writes_are_kept_in_step_and_leave_updated_at_alone(econn: psycopg.Connection) -> None:
    econn.execute(UPDATED_AT_STANDIN)
    row = insert(econn, {"source": "trip"})
    before = econn.execute("SELECT updated_at FROM context_events WHERE id = %s", (row,)).fetchone()[0]  # type: ignore[index]
    with econn.transaction():
        econn.execute("SET LOCAL trackschema.maintenance = 'on'")
        econn.execute("UPDATE context_events SET metadata = metadata || '{\"source\": \"planner\"}' WHERE id = %s", (row,))
    assert econn.execute("SELECT source_type, updated_at FROM context_events WHERE id = %s", (row,)).fetchone() == ("planner", before)
    econn.execute("UPDATE context_events SET source_type = 'guardrails' WHERE id = %s", (row,))
    after = econn.execute("SELECT metadata->>'source', updated_at FROM context_events WHERE id = %s", (row,)).fetchone()
    assert after[0] == "guardrails" and after[1] > before  # type: ignore[index]


def test_references_before_and_after_the_foreign_key(expanded_db_url: str, econn: psycopg.Connection) -> None:
    """Version 1 (expand) promotes a reference by form; version 2 (validate, with the
    foreign key) looks it up: a dangling id becomes NULL + reject instead of failing the
    write, and ON DELETE SET NULL keeps the key with a reject saying the item is gone."""
    items = ensure_roadmap_items(econn, 3)
    ghost = str(uuid.uuid4())
    early = insert(econn, {"roadmap_item_id": ghost})
    assert fetch(econn, early)[1] == ghost
    migrate.upgrade(make_settings(expanded_db_url), VALIDATE)
    assert fetch(econn, early)[1] is None  # validate nulled it before validating the key
    assert "no roadmap_items row has id" in rejects(econn, early)["source_roadmap_item_id"]
    late = insert(econn, {"roadmap_item_id": ghost})  # would violate the foreign key: must not fail
    assert fetch(econn, late)[1] is None and "no roadmap_items row" in rejects(econn, late)["source_roadmap_item_id"]
    kept = insert(econn, {"roadmap_item_id": items[0], "source": "guardrails"})
    econn.execute("DELETE FROM roadmap_items WHERE id = %s", (items[0],))
    source_type, roadmap, _, metadata = fetch(econn, kept)
    assert roadmap is None and metadata["roadmap_item_id"] == items[0] and source_type == "guardrails"
    assert "no roadmap_items row" in rejects(econn, kept)["source_roadmap_item_id"]
    assert diverged(econn, reference_checked=True) == 0
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # a column write is typed input: the key checks it
        insert(econn, {}, source_roadmap_item_id=ghost)
    with pytest.raises(psycopg.errors.CheckViolation):
        insert(econn, {}, source_type="email")
