"""A tiny application that writes to trackschema's schema: it keeps contacts and shows a
contact's change history. Its tests (test_contacts.py) use the `trackschema_db` and
`trackschema_migrator` fixtures of the trackschema pytest plugin, the way any
application's tests would: nothing is imported from trackschema there.

The schema does the tracking: every write below makes an `entity_events` row per changed
row in the same transaction (with the table, the action and the user
`app.current_user_id` names), which is what `history` reads.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class Change:
    table: str
    action: str
    user_id: uuid.UUID | None
    occurred_at: datetime


def acting_as(conn: psycopg.Connection, user_id: uuid.UUID) -> None:
    """Record this session's writes as `user_id`'s (for the rest of the session)."""
    conn.execute("SELECT set_config('app.current_user_id', %s, false)", (str(user_id),))


def add_contact(conn: psycopg.Connection, first_name: str, email: str) -> uuid.UUID:
    """A new contact (an entity of type `contact`, made on first use), in one transaction."""
    with conn.transaction():
        conn.execute("""INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')
                        ON CONFLICT (name) DO NOTHING""")
        row = conn.execute("""INSERT INTO entities (entity_type_id)
                              SELECT id FROM entity_types WHERE name = 'contact' RETURNING id""").fetchone()
        assert row is not None
        conn.execute("INSERT INTO contacts (id, first_name, email) VALUES (%s, %s, %s)", (row[0], first_name, email))
    return row[0]


def rename_contact(conn: psycopg.Connection, contact_id: uuid.UUID, first_name: str) -> None:
    conn.execute("UPDATE contacts SET first_name = %s WHERE id = %s", (first_name, contact_id))


def history(conn: psycopg.Connection, contact_id: uuid.UUID) -> list[Change]:
    """What happened to a contact, in the order it was written, from the tracked changes."""
    rows = conn.execute("""SELECT table_name, action, performed_by, occurred_at FROM entity_events
                            WHERE entity_id = %s ORDER BY id""", (contact_id,)).fetchall()
    return [Change(*row) for row in rows]
