"""trackschema.schema.catalog on real PostgreSQL: a database cloned from the template at head
is changed by hand, then its snapshot is compared with the template's.

The template is what a fresh `upgrade head` gives this month, so an untouched clone has
no drift at all, even with rolling partitions off; each test changes one thing and
asserts exactly which differences come back, with what is there and what should be.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from tests.schema.invalid_index import leave_contacts_name_index_invalid
from trackschema.partitions import monthly
from trackschema.runtime import scratch
from trackschema.runtime.provision import PostgresServer
from trackschema.schema.catalog import CatalogSnapshot, Difference, compare, snapshot_on


@pytest.fixture
def expected(pg_server: PostgresServer, template_db: str) -> CatalogSnapshot:
    """The snapshot of the template database (head, built this month), read on a
    connection closed right after, so the next clone of the template is not refused."""
    with psycopg.connect(scratch.database_url(pg_server.url, template_db), autocommit=True) as conn:
        return snapshot_on(conn)


def drift(conn: psycopg.Connection, expected: CatalogSnapshot, *, rolling: bool = True) -> list[Difference]:
    return compare(snapshot_on(conn), expected, rolling_partitions=rolling)


def bounds(conn: psycopg.Connection, table: str) -> list[tuple[str, datetime | None, datetime | None]]:
    """(partition, lower, upper) of `table`'s range partitions, oldest first (None: unbounded)."""
    rows = conn.execute("""SELECT partition::text, lower_bound, upper_bound FROM trackschema.partition_bounds(%s::regclass)
                            WHERE NOT is_default ORDER BY lower_bound NULLS FIRST""", (table,)).fetchall()
    return [(name, lo.astimezone(UTC) if lo else None, hi.astimezone(UTC) if hi else None) for name, lo, hi in rows]


def literal(instant: datetime) -> str:
    """A UTC instant as the snapshot shows a partition bound."""
    return f"'{instant:%Y-%m-%d %H:%M:%S}+00'"


def ident(qualified: str) -> sql.Identifier:
    return sql.Identifier(*qualified.split("."))


def attach(conn: psycopg.Connection, parent: str, partition: str, lower: datetime | None, upper: datetime) -> None:
    """ATTACH `partition` to `parent` FOR VALUES FROM (lower or MINVALUE) TO (upper)."""
    conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
        ident(parent), ident(partition), sql.SQL("MINVALUE") if lower is None else sql.Literal(lower), sql.Literal(upper)))


def detach(conn: psycopg.Connection, parent: str, partition: str, *, drop: bool = False) -> None:
    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(ident(parent), ident(partition)))
    if drop:
        conn.execute(sql.SQL("DROP TABLE {}").format(ident(partition)))


def test_an_untouched_database_has_no_drift_whatever_its_data_and_statistics(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'seen', now() - make_interval(hours => g) FROM generate_series(1, 500) g")
    conn.execute("SELECT nextval('public.event_queue_id_seq') FROM generate_series(1, 3)")
    conn.execute("ANALYZE")  # reltuples, relpages, pg_statistic
    conn.execute("VACUUM FULL public.contacts")  # new relfilenodes
    conn.execute("REINDEX TABLE public.entities")
    conn.execute("ALTER TABLE public.contacts ALTER COLUMN email SET STATISTICS 500")
    path_before = conn.execute("SHOW search_path").fetchone()
    live = snapshot_on(conn)
    assert conn.execute("SHOW search_path").fetchone() == path_before, "the snapshot's settings stay inside its transaction"
    assert conn.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'activity_log_history'").fetchone()[0] > 0  # type: ignore[index]
    assert compare(live, expected, rolling_partitions=False) == []
    assert compare(live, expected) == []
    assert live == expected and hash(live) == hash(expected) and len({live, expected}) == 1
    assert len(live["column"]) > 300 and len(live["function"]) > 40 and len(live["partition"]) >= 8


def test_the_snapshot_reads_on_a_read_only_connection_and_in_a_callers_transaction(db_url: str, expected: CatalogSnapshot) -> None:
    with psycopg.connect(db_url, autocommit=True, options="-c default_transaction_read_only=on") as conn:
        assert compare(snapshot_on(conn), expected, rolling_partitions=False) == []
    with psycopg.connect(db_url) as conn:  # a transaction of the caller's, with its own settings
        conn.execute("SET LOCAL TimeZone = 'Asia/Tokyo'")
        conn.execute("SET LOCAL search_path = trackschema, public")
        assert snapshot_on(conn) == expected
        assert conn.execute("SELECT current_setting('TimeZone'), current_setting('search_path')").fetchone() == ("Asia/Tokyo", "trackschema, public")


def test_a_column_added_by_hand_is_found(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    conn.execute("ALTER TABLE public.contacts ADD COLUMN nickname text DEFAULT 'n/a'")
    assert drift(conn, expected) == [
        Difference("column", "public.contacts.nickname", "text NULL DEFAULT 'n/a'::text", None, "table public.contacts"),
    ]


def test_a_changed_column_type_default_and_nullability_are_found(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    should_be = expected["column"]["public.contacts.email"]
    conn.execute("ALTER TABLE public.contacts ALTER COLUMN email SET NOT NULL, ALTER COLUMN email SET DEFAULT 'x@example.com'")
    found = drift(conn, expected)
    assert [(d.kind, d.name, d.should_be) for d in found] == [("column", "public.contacts.email", should_be)]
    assert found[0].there is not None and "NOT NULL DEFAULT 'x@example.com'" in found[0].there and " NULL" in should_be


def test_an_index_left_invalid_by_a_failed_concurrent_build_is_found(conn: psycopg.Connection, db_url: str, expected: CatalogSnapshot) -> None:
    should_be = expected["index"]["public.idx_contacts_name"]
    assert should_be == "INDEX ON public.contacts USING btree (last_name, first_name)"
    leave_contacts_name_index_invalid(conn, db_url)
    assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.idx_contacts_name'::regclass").fetchone() == (False,)
    found = drift(conn, expected)
    assert len(found) == 1 and (found[0].kind, found[0].name, found[0].should_be) == ("index", "public.idx_contacts_name", should_be)
    assert found[0].there is not None and found[0].there.startswith(should_be + " INVALID")


def test_a_function_replaced_by_hand_is_found(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    signature = "public.update_updated_at_column()"
    conn.execute("""CREATE OR REPLACE FUNCTION public.update_updated_at_column() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN NEW.updated_at := now(); RETURN NEW; END $$""")
    found = drift(conn, expected)
    assert [(d.kind, d.name, d.object) for d in found] == [("function", signature, f"function {signature}")]
    assert found[0].should_be == expected["function"][signature]
    assert found[0].there != found[0].should_be and found[0].there.startswith("function returns trigger, plpgsql, volatile; definition sha256:")  # type: ignore[union-attr]


def test_a_hand_made_grant_a_dropped_policy_and_a_not_valid_constraint_are_found(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    check = "public.context_events.context_events_source_type_check"
    policy = "public.analytics_clicks.analytics_reader_own"
    conn.execute("GRANT SELECT, UPDATE ON public.contacts TO PUBLIC")
    conn.execute("DROP POLICY analytics_reader_own ON public.analytics_clicks")
    definition = expected["constraint"][check]
    assert definition.startswith("CHECK (") and "NOT VALID" not in definition
    conn.execute("ALTER TABLE public.context_events DROP CONSTRAINT context_events_source_type_check")
    conn.execute(sql.SQL("ALTER TABLE public.context_events ADD CONSTRAINT context_events_source_type_check {} NOT VALID").format(sql.SQL(definition)))
    assert drift(conn, expected) == [
        Difference("policy", policy, None, expected["policy"][policy], "table public.analytics_clicks"),
        Difference("grant", "table public.contacts TO PUBLIC", "SELECT, UPDATE", None, "table public.contacts"),
        Difference("constraint", check, definition + " NOT VALID", definition, "table public.context_events"),
    ]
    conn.execute("ALTER TABLE public.context_events VALIDATE CONSTRAINT context_events_source_type_check")
    assert [d.kind for d in drift(conn, expected)] == ["policy", "grant"], "validated, the constraint is what head says"


def test_a_dropped_partitioned_index_is_one_line_and_a_trigger_disabled_by_hand_is_found(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    conn.execute("DROP INDEX public.idx_activity_log_user_time")  # and its copy on every partition
    conn.execute("ALTER TABLE public.contacts DISABLE TRIGGER USER")
    found = drift(conn, expected)
    index = [d for d in found if d.kind == "index"]
    assert index == [Difference("index", "public.idx_activity_log_user_time", None,
                                "INDEX ON ONLY public.activity_log USING btree (user_id, occurred_at DESC)", "table public.activity_log")]
    triggers = [d for d in found if d.kind == "trigger"]
    assert triggers and all(d.object == "table public.contacts" and d.there == d.should_be + " (DISABLED)" for d in triggers)  # type: ignore[operator]
    assert len(found) == len(index) + len(triggers)


def test_names_postgresql_makes_up_are_not_drift(conn: psycopg.Connection, pg_server: PostgresServer, template_db: str,
                                                  expected: CatalogSnapshot) -> None:
    """A foreign key dropped and made again has new internal triggers, named from OIDs; a
    partition detached, its indexes renamed and attached again has its copies of the
    parent's indexes under other names. Neither is drift."""
    conn.execute("ALTER TABLE public.address_contacts DROP CONSTRAINT address_contacts_contact_id_fkey")
    conn.execute("""ALTER TABLE public.address_contacts ADD CONSTRAINT address_contacts_contact_id_fkey
                    FOREIGN KEY (contact_id) REFERENCES public.contacts(id) ON DELETE CASCADE""")
    internal = "SELECT array_agg(tgname ORDER BY tgname) FROM pg_trigger WHERE tgisinternal AND tgrelid = 'public.address_contacts'::regclass"
    with psycopg.connect(scratch.database_url(pg_server.url, template_db)) as template:
        assert conn.execute(internal).fetchone() != template.execute(internal).fetchone(), "new OIDs, new trigger names"
    partition, lower, upper = bounds(conn, "activity_log")[1]  # the first monthly partition
    assert upper is not None
    detach(conn, "public.activity_log", f"public.{partition}")
    for n, (index,) in enumerate(conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", (partition,)).fetchall()):
        conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(ident(index), sql.Identifier(f"renamed_{n}")))
    attach(conn, "public.activity_log", f"public.{partition}", lower, upper)
    assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'renamed\\_%'").fetchone()[0] == 3  # type: ignore[index]
    assert drift(conn, expected, rolling=False) == []


@pytest.mark.clock
def test_partitions_rolling_forward_are_not_drift_unless_asked(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    """`partitions ensure` further ahead and `partitions retire` of the history partition
    move the partition set with the clock: not drift. With rolling_partitions=False the
    same snapshots differ by exactly those partitions."""
    created = monthly.ensure_on(conn, months_ahead=6)
    assert len(created) >= 6  # three more months of each table at least
    history_upper = bounds(conn, "activity_log")[0][2]
    assert history_upper is not None
    retired = [p.partition for table in ("activity_log", "analytics_events")
               for p in monthly.retire_on(conn, monthly.RetireOptions(before=history_upper, action="drop", table=table)).partitions]
    assert retired == ["activity_log_history", "analytics_events_history"]
    assert drift(conn, expected) == []
    strict = drift(conn, expected, rolling=False)
    assert {d.name for d in strict} == {f"public.{c.partition}" for c in created} | {"public.activity_log_history", "public.analytics_events_history"}
    assert all(d.kind == "partition" for d in strict)


@pytest.mark.clock
def test_a_database_converted_months_ago_is_not_drift(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    """What a database partitioned two months before today looks like: its history
    partition ends two months earlier, and monthly partitions cover the months between."""
    history, _, upper = bounds(conn, "activity_log")[0]
    assert upper is not None
    months = [upper.replace(year=upper.year - (upper.month <= n), month=(upper.month - n - 1) % 12 + 1) for n in (2, 1)]
    detach(conn, "public.activity_log", "public.activity_log_history")
    attach(conn, "public.activity_log", "public.activity_log_history", None, months[0])
    for lower, upper_bound in zip(months, [*months[1:], upper]):
        conn.execute("SELECT trackschema.partition_create('public.activity_log', %s, %s)", (lower, upper_bound))
    assert [b[2] for b in bounds(conn, "activity_log")[:3]] == [*months, upper] and history == "activity_log_history"
    assert drift(conn, expected) == []
    strict = drift(conn, expected, rolling=False)
    assert {(d.kind, d.name) for d in strict} == {("partition", "public.activity_log_history")} | {
        ("partition", f"public.activity_log_p{m:%Y_%m}") for m in months}
    # and as it would be if `partitions ensure` had not run since: its newest month not made yet
    newest = bounds(conn, "activity_log")[-1][0]
    detach(conn, "public.activity_log", f"public.{newest}", drop=True)
    assert drift(conn, expected) == []


@pytest.mark.clock
def test_a_partition_missing_in_the_middle_or_with_wrong_bounds_is_drift(conn: psycopg.Connection, expected: CatalogSnapshot) -> None:
    middle = bounds(conn, "activity_log")[2][0]  # history, first month, second month (dropped), third month
    detach(conn, "public.activity_log", f"public.{middle}", drop=True)
    name, lower, _ = bounds(conn, "analytics_events")[2]
    assert lower is not None
    detach(conn, "public.analytics_events", f"public.{name}")
    attach(conn, "public.analytics_events", f"public.{name}", lower, lower.replace(day=16))
    found = drift(conn, expected)
    assert found == [
        Difference("partition", f"public.{middle}", None, expected["partition"][f"public.{middle}"], "table public.activity_log"),
        Difference("partition", f"public.{name}",
                   f"of public.analytics_events FOR VALUES FROM ({literal(lower)}) TO ({literal(lower.replace(day=16))})",
                   expected["partition"][f"public.{name}"], "table public.analytics_events"),
    ]
    assert drift(conn, expected, rolling=False) == found


def test_a_foreign_key_to_a_partitioned_table_and_its_copies_compare_by_their_parent(conn: psycopg.Connection) -> None:
    """The referenced side of a foreign key to a partitioned table has one copy per partition
    (same name, same table); each is keyed by the partition it points to."""
    conn.execute("CREATE TABLE public.probe_ref (id uuid, occurred_at timestamptz, FOREIGN KEY (id, occurred_at) REFERENCES public.activity_log (id, occurred_at))")
    snap = snapshot_on(conn)
    partitions = [f"public.{p}" for p, _, _ in bounds(conn, "activity_log")]
    keys = [k for k in snap["constraint"] if k.startswith("public.probe_ref.probe_ref_id_occurred_at_fkey")]
    assert sorted(keys) == sorted(["public.probe_ref.probe_ref_id_occurred_at_fkey"] +
                                  [f"public.probe_ref.probe_ref_id_occurred_at_fkey to {p}" for p in partitions])
    without = CatalogSnapshot(snap.schemas, tuple(e for e in snap.entries if not e.name.startswith(("public.probe_ref", "table public.probe_ref"))
                                                  and e.relation != "public.probe_ref"), snap.partitions, snap.rolling)
    found = compare(snap, without)
    assert [(d.kind, d.name, d.should_be) for d in found] == [("table", "public.probe_ref", None)], "its objects fold into its line"
