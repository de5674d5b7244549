"""updated_at maintenance, entity change tracking (one entity_events row per change: the
outbox; the activity feed reads it) and the function layer, against a real database at head."""

from __future__ import annotations

import random
import uuid

import psycopg
import pytest

ACTOR = "01a200a0-e0d9-7d4b-9f7f-311ec94e1991"


def counts(conn: psycopg.Connection) -> tuple[int, int, int]:
    """Rows of entity_events, activity_log and event_retries: a change writes the first only."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM entity_events), (SELECT count(*) FROM activity_log), (SELECT count(*) FROM event_retries)"
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def types(conn: psycopg.Connection) -> dict[str, uuid.UUID]:
    rows = conn.execute(
        """INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact'), ('address', 'Address'), ('organisation', 'Organisation')
           RETURNING name, id"""
    ).fetchall()
    return dict(rows)


def new_entity(conn: psycopg.Connection, type_id: uuid.UUID, status: str = "ACTIVE") -> uuid.UUID:
    row = conn.execute("INSERT INTO entities (entity_type_id, status) VALUES (%s, %s) RETURNING id", (type_id, status)).fetchone()
    assert row is not None
    return row[0]


# --- updated_at -------------------------------------------------------------------------


def test_update_bumps_updated_at_and_a_noop_update_rewrites_nothing(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    old = "2020-01-01 00:00:00+00"
    eid = conn.execute(
        "INSERT INTO entities (entity_type_id, updated_at) VALUES (%s, %s) RETURNING id", (types["contact"], old)
    ).fetchone()[0]  # type: ignore[index]
    xmin_before = conn.execute("SELECT xmin::text FROM entities WHERE id = %s", (eid,)).fetchone()[0]  # type: ignore[index]
    events_before = counts(conn)

    noop = conn.execute("UPDATE entities SET status = status, data = data WHERE id = %s", (eid,))
    assert noop.rowcount == 0  # skipped by the BEFORE trigger
    row = conn.execute("SELECT xmin::text, updated_at = %s::timestamptz FROM entities WHERE id = %s", (old, eid)).fetchone()
    assert row == (xmin_before, True)  # no new row version, updated_at untouched
    assert counts(conn) == events_before  # and nothing tracked

    with conn.transaction():
        changed = conn.execute("UPDATE entities SET status = 'INACTIVE' WHERE id = %s", (eid,))
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    assert changed.rowcount == 1
    assert conn.execute("SELECT updated_at FROM entities WHERE id = %s", (eid,)).fetchone()[0] == now  # type: ignore[index]


def test_maintenance_write_keeps_updated_at(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    old = "2020-01-01 00:00:00+00"
    conn.execute(
        "INSERT INTO context_events (context_id, created_by, title, start_at, updated_at) VALUES (%s, %s, 't', now(), %s)",
        (uuid.uuid4(), uuid.uuid4(), old),
    )
    with conn.transaction():
        conn.execute("SET LOCAL trackschema.maintenance = 'on'")
        conn.execute("""UPDATE context_events SET metadata = '{"source": "backfill"}'""")
    row = conn.execute("SELECT metadata ->> 'source', updated_at = %s::timestamptz FROM context_events", (old,)).fetchone()
    assert row == ("backfill", True)

    # SET LOCAL ended with the transaction: the setting now reads '' and means off.
    assert conn.execute("SELECT current_setting('trackschema.maintenance', true)").fetchone()[0] == ""  # type: ignore[index]
    conn.execute("UPDATE context_events SET title = 'changed'")
    assert conn.execute("SELECT updated_at > %s::timestamptz FROM context_events", (old,)).fetchone()[0] is True  # type: ignore[index]


def test_every_table_with_updated_at_has_the_trigger_at_head(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """SELECT c.relname,
                  (SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                    WHERE t.tgrelid = c.oid AND p.proname = 'update_updated_at_column' AND t.tgenabled <> 'D')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema')"""
    ).fetchall()
    assert len(rows) >= 8
    assert {name: n for name, n in rows if n != 1} == {}


# --- tracking ---------------------------------------------------------------------------


def test_insert_update_delete_each_write_one_event_the_outbox(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    conn.execute("SELECT set_config('app.current_user_id', %s, false)", (ACTOR,))
    eid = new_entity(conn, types["contact"])
    conn.execute("INSERT INTO contacts (id, first_name, email) VALUES (%s, 'Ada', 'ada@example.com')", (eid,))
    with conn.transaction():
        conn.execute("UPDATE contacts SET last_name = 'Lovelace', email = 'ada@lovelace.org' WHERE id = %s", (eid,))
        update_xid = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]  # type: ignore[index]
    conn.execute("DELETE FROM contacts WHERE id = %s", (eid,))

    events = conn.execute(
        """SELECT table_name, action, entity_id, entity_type_id, performed_by, previous_state, new_state, changed_columns, id
             FROM entity_events ORDER BY id"""
    ).fetchall()
    assert [(e[0], e[1]) for e in events] == [("entities", "INSERT"), ("contacts", "INSERT"), ("contacts", "UPDATE"), ("contacts", "DELETE")]
    assert all(e[2] == eid and e[3] == types["contact"] and str(e[4]) == ACTOR for e in events)

    ins = events[1]
    assert ins[5] is None and ins[6]["first_name"] == "Ada" and ins[6]["email"] == "ada@example.com" and ins[7] is None
    upd = events[2]
    assert upd[7] == ["last_name", "email"]
    assert upd[5] == {"last_name": None, "email": "ada@example.com"}
    assert upd[6] == {"last_name": "Lovelace", "email": "ada@lovelace.org"}
    dele = events[3]  # logged from OLD
    assert dele[6] is None and dele[5]["last_name"] == "Lovelace" and dele[5]["id"] == str(eid)

    # one row per change: no activity_log row, no queue row; the event carries its transaction
    assert counts(conn) == (4, 0, 0)
    xids = conn.execute("SELECT xid::text::bigint FROM entity_events ORDER BY id").fetchall()
    assert xids[2] == (update_xid,) and len({x for (x,) in xids}) == 4
    # the activity feed reads the events: who, what, when
    feed = conn.execute("SELECT entity_event_id, action, entity_id, user_id, entity_type FROM activity_feed ORDER BY id").fetchall()
    assert feed == [(e[8], e[1], eid, uuid.UUID(ACTOR), e[0]) for e in events]
    # the consumer 'propagate' (registered by the revision) has them all to handle; the
    # compatibility view event_queue lists them as pending, one row per event
    queue = conn.execute("SELECT entity_event_id, event_type, status, consumer FROM event_queue ORDER BY entity_event_id").fetchall()
    assert [q[1] for q in queue] == ["entities.insert", "contacts.insert", "contacts.update", "contacts.delete"]
    assert [q[0] for q in queue] == [e[8] for e in events] and {(q[2], q[3]) for q in queue} == {("pending", "propagate")}
    # tracking ids follow the UUIDv7 layout (version nibble 7, RFC variant), in write order
    assert all(e[8].version == 7 and e[8].variant == uuid.RFC_4122 for e in events)


def test_bulk_update_pairs_every_old_row_with_its_new_row(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    conn.execute(
        """INSERT INTO entities (entity_type_id, status, data)
           SELECT %s, 'S' || g, jsonb_build_object('n', g) FROM generate_series(1, 500) g""",
        (types["organisation"],),
    )
    conn.execute("DELETE FROM entity_events")
    # a different change per row, applied in an order unrelated to insertion
    conn.execute(
        """UPDATE entities e SET status = 'T' || (e.data ->> 'n'), data = e.data || jsonb_build_object('m', (e.data ->> 'n')::int * 2)
             FROM (SELECT id FROM entities ORDER BY md5(id::text)) o WHERE o.id = e.id"""
    )
    bad = conn.execute(
        """SELECT count(*) FROM entity_events ev JOIN entities e ON e.id = ev.entity_id
            WHERE ev.action = 'UPDATE'
              AND NOT (ev.previous_state ->> 'status' = 'S' || (e.data ->> 'n')
                       AND ev.new_state ->> 'status' = e.status
                       AND ev.new_state -> 'data' = e.data
                       AND ev.changed_columns = ARRAY['status', 'data'])"""
    ).fetchone()[0]  # type: ignore[index]
    assert conn.execute("SELECT count(*) FROM entity_events WHERE action = 'UPDATE'").fetchone()[0] == 500  # type: ignore[index]
    assert bad == 0


# The same changes made one row per statement (the one-row path) and two rows per
# statement (the set-based path); ids and times differ, the events must not.
SAME_CHANGES = [
    ("INSERT", "INSERT INTO entities (id, entity_type_id, status, data, created_at, updated_at) "
               "SELECT id, %(type)s, 'NEW', '{\"a\": 1, \"b\": [true, null]}', %(t)s, %(t)s FROM unnest(%(ids)s::uuid[]) AS id"),
    ("INSERT", "INSERT INTO contacts (id, first_name, email, created_at, updated_at) "
               "SELECT id, 'Ada', NULL, %(t)s, %(t)s FROM unnest(%(ids)s::uuid[]) AS id"),
    ("UPDATE", "UPDATE entities SET status = 'SEEN', data = data || '{\"b\": null}' WHERE id = ANY (%(ids)s)"),
    ("UPDATE", "UPDATE contacts SET email = 'ada@example.com', first_name = NULL WHERE id = ANY (%(ids)s)"),
    ("UPDATE", "UPDATE entities SET updated_at = %(t)s WHERE id = ANY (%(ids)s)"),
    ("DELETE", "DELETE FROM contacts WHERE id = ANY (%(ids)s)"),
    ("DELETE", "DELETE FROM entities WHERE id = ANY (%(ids)s)"),
]


def test_one_row_and_set_based_statements_write_the_same_events(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    conn.execute("SELECT set_config('app.current_user_id', %s, false)", (ACTOR,))
    single, pair = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    t = "2024-05-06 07:08:09+00"
    with conn.transaction():  # one now() for updated_at
        for _action, statement in SAME_CHANGES:
            one = conn.execute(statement, {"ids": [single], "type": types["contact"], "t": t})
            two = conn.execute(statement, {"ids": pair, "type": types["contact"], "t": t})
            assert (one.rowcount, two.rowcount) == (1, 2)

    def events(entity_id: uuid.UUID) -> list[tuple[object, ...]]:
        return conn.execute(
            """SELECT table_name, action, entity_type_id, performed_by, previous_state - 'id', new_state - 'id', changed_columns
                 FROM entity_events WHERE entity_id = %s ORDER BY id""",
            (entity_id,),
        ).fetchall()

    expected = events(single)
    assert [(e[0], e[1]) for e in expected] == [
        ("entities", "INSERT"), ("contacts", "INSERT"), ("entities", "UPDATE"), ("contacts", "UPDATE"),
        ("entities", "UPDATE"), ("contacts", "DELETE"), ("entities", "DELETE"),
    ]
    assert expected[3][4:] == ({"first_name": "Ada", "email": None}, {"first_name": None, "email": "ada@example.com"}, ["first_name", "email"])
    assert expected[4][4:] == ({}, {}, [])  # a touch of updated_at only
    assert expected[5][2] == types["contact"] and expected[6][4]["data"] == {"a": 1, "b": None}
    assert events(pair[0]) == events(pair[1]) == expected

    # one row per change, all of one transaction; ids in write order: the statements'
    # clocks, then the sequence within a statement
    rows = conn.execute("SELECT id, xid FROM entity_events").fetchall()
    assert len(rows) == 3 * len(SAME_CHANGES) and len({x for _, x in rows}) == 1
    ids = {e: [r[0] for r in conn.execute("SELECT id FROM entity_events WHERE entity_id = %s ORDER BY id", (e,))] for e in (single, *pair)}
    for i in range(len(SAME_CHANGES)):  # statement i: the one-row statement ran first, then the two-row one
        first, (low, high) = ids[single][i], sorted((ids[pair[0]][i], ids[pair[1]][i]))
        assert first < low and (i + 1 == len(SAME_CHANGES) or high < ids[single][i + 1])
    assert counts(conn) == (len(rows), 0, 0)


def test_tracking_a_table_with_a_type_from_another_schema_and_a_type_without_equality(
    conn: psycopg.Connection, types: dict[str, uuid.UUID]
) -> None:
    """The generated function names column types through the table (%TYPE), so it works
    whatever the writer's search_path; point has no = operator and compares as text."""
    conn.execute("CREATE SCHEMA moods")
    conn.execute("CREATE TYPE moods.mood AS ENUM ('calm', 'busy')")
    conn.execute("CREATE TABLE entity_moods (entity_id uuid PRIMARY KEY REFERENCES entities (id), mood moods.mood, spot point)")
    conn.execute("SET search_path = public, moods")
    conn.execute("SELECT install_entity_tracking('entity_moods', 'entity_id')")
    conn.execute("RESET search_path")
    a, b, c = (new_entity(conn, types["organisation"]) for _ in range(3))
    conn.execute("INSERT INTO entity_moods VALUES (%s, 'calm', point(1, 2)), (%s, 'calm', point(1, 2)), (%s, 'calm', point(1, 2))", (a, b, c))
    conn.execute("UPDATE entity_moods SET mood = 'busy', spot = point(3, 4) WHERE entity_id = %s", (a,))
    conn.execute("UPDATE entity_moods SET mood = 'busy', spot = point(3, 4) WHERE entity_id IN (%s, %s)", (b, c))
    rows = conn.execute(
        """SELECT entity_id, entity_type_id, previous_state, new_state, changed_columns
             FROM entity_events WHERE table_name = 'entity_moods' AND action = 'UPDATE' ORDER BY entity_id"""
    ).fetchall()
    state = ({"mood": "calm", "spot": "(1,2)"}, {"mood": "busy", "spot": "(3,4)"}, ["mood", "spot"])
    assert rows == sorted((e, types["organisation"], *state) for e in (a, b, c))
    # equal points compare equal as text: a rewrite with the same values changes no column
    # (no updated_at trigger here to skip it, so it is still an event)
    conn.execute("UPDATE entity_moods SET spot = point(3, 4) WHERE entity_id = %s", (a,))
    conn.execute("UPDATE entity_moods SET spot = point(3, 4) WHERE entity_id IN (%s, %s)", (b, c))
    touched = conn.execute(
        "SELECT previous_state, new_state, changed_columns FROM entity_events WHERE table_name = 'entity_moods' AND action = 'UPDATE' ORDER BY id DESC LIMIT 3"
    ).fetchall()
    assert touched == [({}, {}, [])] * 3


def test_a_statement_that_changes_no_row_writes_nothing(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    new_entity(conn, types["contact"])
    before = counts(conn)
    conn.execute("UPDATE entities SET status = 'X' WHERE false")
    conn.execute("DELETE FROM contacts")
    conn.execute("INSERT INTO entities (entity_type_id) SELECT id FROM entity_types WHERE false")
    conn.execute("UPDATE entities SET status = status")  # skipped row by row by the updated_at trigger
    assert counts(conn) == before


def test_key_change_is_recorded_as_one_update(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    eid = new_entity(conn, types["contact"])
    old_id = conn.execute("INSERT INTO entity_touchpoints (entity_id, touchpoint_type) VALUES (%s, 'call') RETURNING id", (eid,)).fetchone()[0]  # type: ignore[index]
    new_id = uuid.uuid4()
    conn.execute("UPDATE entity_touchpoints SET id = %s", (new_id,))
    row = conn.execute(
        "SELECT entity_id, previous_state, new_state, changed_columns FROM entity_events WHERE table_name = 'entity_touchpoints' AND action = 'UPDATE'"
    ).fetchone()
    assert row == (eid, {"id": str(old_id)}, {"id": str(new_id)}, ["id"])


def test_touch_only_update_is_an_event_with_no_changed_columns(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    eid = new_entity(conn, types["contact"])
    conn.execute("UPDATE entities SET updated_at = '2021-01-01' WHERE id = %s", (eid,))
    row = conn.execute("SELECT previous_state, new_state, changed_columns FROM entity_events WHERE action = 'UPDATE'").fetchone()
    assert row == ({}, {}, [])


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, None),
        ("", None),
        ("garbage", None),
        ("01a200a0-e0d9-7d4b-9f7f-311ec94e199", None),  # one digit short
        ("{01a200a0-e0d9-7d4b-9f7f-311ec94e1991", None),  # unbalanced brace
        (" " + ACTOR, None),
        (ACTOR + "\n", None),
        ("'; DROP TABLE entities; --", None),
        ("-" * 36, None),  # hyphens in place, but no digits
        ("01a200a0-e0d9-7d4b-9f7f-311ec94e199-", None),  # a fifth hyphen
        ("01a200a0e-0d9-7d4b-9f7f-311ec94e1991", None),  # a hyphen out of place
        ("01a200a0e0d9-7d4b-9f7f-311ec94e1991", None),  # some hyphens only
        ("01a200a0-e0d9-7d4b-9f7f-311ec94e199g", None),  # not hex
        ("{01a200a0-e0d9-7d4b-9f7f-311ec94e1991{", None),
        ("{" + ACTOR.replace("-", "") + "-", None),
        ("{{" + ACTOR.replace("-", "")[2:] + "}}", None),
        ("\u0661" * 32, None),  # Arabic-Indic digits are digits, not hex
        (ACTOR, ACTOR),
        (ACTOR.upper(), ACTOR),
        ("{" + ACTOR.upper() + "}", ACTOR),
        (ACTOR.replace("-", ""), ACTOR),
        ("{" + ACTOR.replace("-", "") + "}", ACTOR),
    ],
)
def test_actor_from_setting_never_fails_the_write(conn: psycopg.Connection, types: dict[str, uuid.UUID], setting: str | None, expected: str | None) -> None:
    if setting is not None:
        conn.execute("SELECT set_config('app.current_user_id', %s, false)", (setting,))
    eid = new_entity(conn, types["contact"])
    conn.execute("UPDATE entities SET status = 'X' WHERE id = %s", (eid,))
    conn.execute("DELETE FROM entities WHERE id = %s", (eid,))
    performed = conn.execute("SELECT DISTINCT performed_by FROM entity_events").fetchall()
    users = conn.execute("SELECT DISTINCT user_id FROM activity_feed").fetchall()
    assert performed == users == [(uuid.UUID(expected) if expected else None,)]
    assert conn.execute("SELECT count(*) FROM entity_events").fetchone()[0] == 3  # type: ignore[index]


def test_actor_never_raises_on_mutated_uuids(conn: psycopg.Connection) -> None:
    """Near-misses of every accepted spelling: each gives NULL or exactly its UUID, never an error."""
    rng = random.Random(8)
    alphabet = "0123456789abcdefABCDEF-{}g \u0661"
    accepted = 0
    for _ in range(1500):
        value = uuid.UUID(int=rng.getrandbits(128))
        text = rng.choice([str(value), str(value).upper(), value.hex, "{" + str(value) + "}", "{" + value.hex + "}"])
        chars = list(text)
        for _ in range(rng.choice([0, 1, 1, 2])):
            at = rng.randrange(len(chars) + 1)
            match rng.randrange(3):
                case 0:
                    chars.insert(at, rng.choice(alphabet))
                case 1:
                    del chars[min(at, len(chars) - 1)]
                case _:
                    chars[min(at, len(chars) - 1)] = rng.choice(alphabet)
        mutated = "".join(chars)
        got = conn.execute(
            "SELECT current_actor_id() FROM (SELECT set_config('app.current_user_id', %s, false)) AS s OFFSET 0", (mutated,)
        ).fetchone()[0]  # type: ignore[index]
        if got is not None:
            accepted += 1
            assert got == uuid.UUID(mutated.strip("{}").replace("-", "")), mutated
    assert 300 < accepted < 1500  # unmutated ones and harmless changes (a hex digit for a hex digit) pass


def test_set_local_actor_reads_empty_after_commit_and_is_null(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    with conn.transaction():
        conn.execute("SELECT set_config('app.current_user_id', %s, true)", (ACTOR,))  # SET LOCAL
        new_entity(conn, types["contact"])
    new_entity(conn, types["contact"])
    assert conn.execute("SELECT current_setting('app.current_user_id', true)").fetchone()[0] == ""  # type: ignore[index]
    rows = conn.execute("SELECT performed_by FROM entity_events ORDER BY id").fetchall()
    assert rows == [(uuid.UUID(ACTOR),), (None,)]


def test_failed_writes_leave_no_event(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    eid = new_entity(conn, types["contact"])
    before = counts(conn)
    # a statement that fails after its rows were written
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("UPDATE entities SET entity_type_id = %s WHERE id = %s", (uuid.uuid4(), eid))
    # a transaction that wrote tracked rows, then failed
    with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
        conn.execute("UPDATE entities SET status = 'GONE' WHERE id = %s", (eid,))
        conn.execute("INSERT INTO contacts (id, first_name) VALUES (%s, 'x')", (eid,))
        conn.execute("SELECT 1 / 0")
    # a function-layer call whose second insert fails
    conn.execute("ALTER TABLE contacts ADD CONSTRAINT contacts_email_has_at CHECK (email LIKE '%@%')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid data for contact"):
        conn.execute("""SELECT fn_create_entity('contact', '{"email": "not-an-address"}')""")
    assert counts(conn) == before
    assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == 1  # type: ignore[index]
    assert conn.execute("SELECT status FROM entities").fetchone()[0] == "ACTIVE"  # type: ignore[index]


def test_cascaded_delete_is_tracked_for_each_table(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    contact = conn.execute("""SELECT fn_create_entity('contact', '{"first_name": "Ada"}')""").fetchone()[0]  # type: ignore[index]
    address = conn.execute("""SELECT fn_create_entity('Address', '{"city": "London"}')""").fetchone()[0]  # type: ignore[index]
    conn.execute("INSERT INTO address_contacts (address_id, contact_id) VALUES (%s, %s)", (address, contact))
    conn.execute("SELECT fn_link_entities(%s, %s, 'lives_at')", (contact, address))
    conn.execute("DELETE FROM entities WHERE id = %s", (contact,))
    deleted = conn.execute("SELECT table_name, entity_id FROM entity_events WHERE action = 'DELETE' ORDER BY table_name").fetchall()
    assert deleted == [("address_contacts", contact), ("contacts", contact), ("entities", contact), ("entity_relationships", contact)]
    assert counts(conn) == (conn.execute("SELECT count(*) FROM activity_feed").fetchone()[0], 0, 0)  # type: ignore[index]


# --- function layer ---------------------------------------------------------------------


def test_fn_create_and_update_entity(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    conn.execute("SELECT set_config('app.current_user_id', %s, false)", (ACTOR,))
    eid = conn.execute(
        """SELECT fn_create_entity('Contact', '{"first_name": "Ada", "email": "ada@example.com", "status": "LEAD", "score": 3, "tier": "gold"}')"""
    ).fetchone()[0]  # type: ignore[index]
    row = conn.execute(
        "SELECT e.entity_type_id, e.status, e.data, e.created_by, c.first_name, c.email FROM entities e JOIN contacts c USING (id) WHERE id = %s",
        (eid,),
    ).fetchone()
    assert row == (types["contact"], "LEAD", {"score": 3, "tier": "gold"}, uuid.UUID(ACTOR), "Ada", "ada@example.com")

    assert conn.execute(
        """SELECT fn_update_entity(%s, '{"last_name": "Lovelace", "score": 4, "tier": null, "status": "ACTIVE"}')""", (eid,)
    ).fetchone()[0] == eid  # type: ignore[index]
    row = conn.execute(
        "SELECT e.status, e.data, c.first_name, c.last_name FROM entities e JOIN contacts c USING (id) WHERE id = %s", (eid,)
    ).fetchone()
    assert row == ("ACTIVE", {"score": 4}, "Ada", "Lovelace")

    # an organisation has no table of its own: everything but status lands in data
    org = conn.execute("""SELECT fn_create_entity(%s, '{"name": "ACME"}')""", (str(types["organisation"]),)).fetchone()[0]  # type: ignore[index]
    assert conn.execute("SELECT data FROM entities WHERE id = %s", (org,)).fetchone()[0] == {"name": "ACME"}  # type: ignore[index]

    # an update that changes nothing writes and logs nothing
    before = counts(conn)
    conn.execute("""SELECT fn_update_entity(%s, '{"score": 4}')""", (eid,))
    assert counts(conn) == before


def test_fn_link_entities_is_idempotent(conn: psycopg.Connection, types: dict[str, uuid.UUID]) -> None:
    a, b = new_entity(conn, types["contact"]), new_entity(conn, types["organisation"])
    first = conn.execute("SELECT fn_link_entities(%s, %s, ' works_at ')", (a, b)).fetchone()[0]  # type: ignore[index]
    again = conn.execute("SELECT fn_link_entities(%s, %s, 'works_at')", (a, b)).fetchone()[0]  # type: ignore[index]
    assert first == again
    assert conn.execute("SELECT count(*) FROM entity_relationships").fetchone()[0] == 1  # type: ignore[index]
    assert conn.execute("SELECT count(*) FROM entity_events WHERE table_name = 'entity_relationships'").fetchone()[0] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ("SELECT fn_create_entity('spaceship', '{}')", psycopg.errors.NoDataFound, "unknown entity type 'spaceship'"),
        ("SELECT fn_create_entity('contact', '[1, 2]')", psycopg.errors.InvalidParameterValue, "must be a JSON object"),
        ("""SELECT fn_create_entity('contact', '{"id": "x"}')""", psycopg.errors.InvalidParameterValue, "may not set id"),
        ("""SELECT fn_create_entity('contact', '{"status": 5}')""", psycopg.errors.InvalidParameterValue, "status must be a string"),
        ("""SELECT fn_create_entity('contact', '{"email": ["a"]}')""", psycopg.errors.InvalidParameterValue, "email must be a string"),
        ("SELECT fn_update_entity(gen_random_uuid(), '{}')", psycopg.errors.NoDataFound, "no entity with id"),
        ("SELECT fn_update_entity((SELECT id FROM entities LIMIT 1), '\"x\"')", psycopg.errors.InvalidParameterValue, "must be a JSON object"),
        ("SELECT fn_link_entities(gen_random_uuid(), (SELECT id FROM entities LIMIT 1), 'x')", psycopg.errors.NoDataFound, "no entity with id"),
        ("SELECT fn_link_entities(id, id, 'x') FROM entities LIMIT 1", psycopg.errors.InvalidParameterValue, "linked to itself"),
        ("SELECT fn_link_entities(gen_random_uuid(), gen_random_uuid(), '  ')", psycopg.errors.InvalidParameterValue, "non-empty"),
    ],
)
def test_function_layer_errors_are_clear_and_write_nothing(
    conn: psycopg.Connection, types: dict[str, uuid.UUID], call: str, error: type[Exception], message: str
) -> None:
    new_entity(conn, types["contact"])
    before = counts(conn)
    with pytest.raises(error, match=message):
        conn.execute(call)
    assert counts(conn) == before
