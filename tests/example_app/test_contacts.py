"""The example application's tests, as an application using trackschema writes them: the
fixtures come from the trackschema pytest plugin (its `pytest11` entry point), nothing is
imported from trackschema.

`trackschema_db` is a database at head, this test's own; `trackschema_migrator` a fresh
empty one the test migrates itself.
"""

from __future__ import annotations

import uuid

from tests.example_app import contacts

ADA = uuid.UUID("00000000-0000-7000-8000-00000000ada0")


def test_a_rename_is_in_the_contacts_history_as_its_user(trackschema_db) -> None:
    with trackschema_db.connect() as conn:
        contacts.acting_as(conn, ADA)
        contact = contacts.add_contact(conn, "Ada", "ada@example.com")
        contacts.rename_contact(conn, contact, "Augusta Ada")
        seen = contacts.history(conn, contact)
    assert [(c.table, c.action) for c in seen] == [("entities", "INSERT"), ("contacts", "INSERT"), ("contacts", "UPDATE")]
    assert {c.user_id for c in seen} == {ADA}


def test_each_test_gets_its_own_database_at_head(trackschema_db) -> None:
    with trackschema_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM contacts").fetchone() == (0,)  # nothing of the test above
        assert conn.execute("SELECT current_database()").fetchone() == (trackschema_db.name,)
        heads = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert len(heads) == 1 and trackschema_db.settings.database_url == trackschema_db.url


def test_history_written_before_partitioning_is_still_read_after_it(trackschema_migrator) -> None:
    """A data-migration test: the application writes at the revision before the tracking
    tables are partitioned (0030), the schema is upgraded, and what it wrote reads the same."""
    trackschema_migrator.upgrade("0023_promotion_contract")
    assert trackschema_migrator.current() == "0023_promotion_contract"
    with trackschema_migrator.connect() as conn:
        contacts.acting_as(conn, ADA)
        contact = contacts.add_contact(conn, "Grace", "grace@example.com")
        contacts.rename_contact(conn, contact, "Grace B.")
        before = contacts.history(conn, contact)
        assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("r",)

    trackschema_migrator.upgrade("0030_partition_tracking_tables")
    with trackschema_migrator.connect() as conn:
        assert contacts.history(conn, contact) == before
        assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("p",)
        contacts.acting_as(conn, ADA)
        contacts.rename_contact(conn, contact, "Grace Hopper")  # the application keeps writing after the conversion
        after = contacts.history(conn, contact)
    assert after[:3] == before and [(c.table, c.action) for c in after[3:]] == [("contacts", "UPDATE")]

    done = trackschema_migrator.upgrade()  # on to head: what it wrote is still there
    assert done.before == ["0030_partition_tracking_tables"] and trackschema_migrator.current() == done.after[0] != done.before[0]
    with trackschema_migrator.connect() as conn:
        assert contacts.history(conn, contact) == after
