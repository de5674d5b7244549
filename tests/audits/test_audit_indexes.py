"""The index audit against catalog states built for real.

Each test compares the findings after building a state with the findings before, so it
shows the audit reporting exactly what was built, whatever later revisions add.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from tests.conftest import run_cli
from trackschema.audits import Finding
from trackschema.audits.indexes import audit_indexes_on

STRUCTURAL = ["duplicate", "redundant", "invalid", "unindexed_fk", "bloat", "write_cost"]


def new_findings(conn: psycopg.Connection, before: list[Finding], kinds: list[str]) -> list[Finding]:
    after = audit_indexes_on(conn, kinds)
    return [f for f in after if f not in before]


def catalog_fingerprint(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT indexrelid::regclass::text, indisvalid, indisready FROM pg_index ORDER BY 1"
    ).fetchall()


def test_duplicate_redundant_and_unindexed_fk_are_reported_exactly(conn: psycopg.Connection) -> None:
    before = audit_indexes_on(conn, STRUCTURAL)
    conn.execute("CREATE INDEX contacts_name_again ON contacts (last_name, first_name)")
    conn.execute("CREATE INDEX roadmap_items_project_only ON roadmap_items (master_project_id)")
    conn.execute("CREATE TABLE audit_child (id bigint PRIMARY KEY, entity_id uuid REFERENCES entities (id))")
    found = {(f.kind, f.index or f.table) for f in new_findings(conn, before, STRUCTURAL)}
    assert found == {
        ("duplicate", "public.contacts_name_again"),
        ("redundant", "public.roadmap_items_project_only"),
        ("unindexed_fk", "public.audit_child"),
    }
    fixes = {f.kind: f.fix for f in new_findings(conn, before, STRUCTURAL)}
    assert fixes["duplicate"] == 'DROP INDEX CONCURRENTLY "public"."contacts_name_again";'
    assert fixes["redundant"] == 'DROP INDEX CONCURRENTLY "public"."roadmap_items_project_only";'
    assert fixes["unindexed_fk"] == 'CREATE INDEX CONCURRENTLY "idx_audit_child_entity_id" ON "public"."audit_child" ("entity_id");'
    # Applying the suggested fixes clears every finding.
    for fix in fixes.values():
        conn.execute(fix)
    assert new_findings(conn, before, STRUCTURAL) == []


def test_index_left_invalid_by_a_failed_concurrent_build(conn: psycopg.Connection) -> None:
    before = audit_indexes_on(conn, STRUCTURAL)
    conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('a', 'Same'), ('b', 'Same2')")
    conn.execute("UPDATE entity_types SET description = 'dup'")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY entity_types_description_key ON entity_types (description)")
    found = new_findings(conn, before, STRUCTURAL)
    assert [(f.kind, f.index) for f in found] == [("invalid", "public.entity_types_description_key")]
    assert found[0].fix.startswith('DROP INDEX CONCURRENTLY "public"."entity_types_description_key"; CREATE UNIQUE INDEX CONCURRENTLY')


def test_partitioned_index_used_through_one_partition_is_not_unused(conn: psycopg.Connection, db_url: str) -> None:
    conn.execute("CREATE TABLE audit_parts (id bigint, at timestamptz NOT NULL, kind text) PARTITION BY RANGE (at)")
    for month in (1, 2, 3):
        conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF audit_parts FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(f"audit_parts_m{month}"), sql.Literal(f"2026-0{month}-01"), sql.Literal(f"2026-0{month + 1}-01")))
    conn.execute("CREATE INDEX audit_parts_used ON audit_parts (id)")
    conn.execute("CREATE INDEX audit_parts_unused ON audit_parts (kind)")
    conn.execute("INSERT INTO audit_parts SELECT g, '2026-02-10'::timestamptz, 'k' FROM generate_series(1, 1000) g")
    with psycopg.connect(db_url, autocommit=True) as reader:
        reader.execute("SET enable_seqscan = off")
        for _ in range(3):
            reader.execute("SELECT * FROM audit_parts WHERE at >= '2026-02-01' AND at < '2026-03-01' AND id = 5").fetchall()
        reader.execute("SELECT pg_stat_force_next_flush()")
    unused = {f.index: f for f in audit_indexes_on(conn, ["unused"])}
    assert "public.audit_parts_used" not in unused
    assert "across 3 partitions" in unused["public.audit_parts_unused"].detail
    # Partition-level child indexes are not reported on their own.
    assert not any(name.startswith("public.audit_parts_m") for name in unused)
    assert "since" in unused["public.audit_parts_unused"].detail  # the statistics' age is shown


def test_bloat_after_a_mass_delete_but_not_on_a_fresh_index(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE audit_bloat (id bigint, payload text)")
    conn.execute("INSERT INTO audit_bloat SELECT g, md5(g::text) FROM generate_series(1, 200000) g")
    conn.execute("CREATE INDEX audit_bloat_payload ON audit_bloat (payload)")
    conn.execute("ANALYZE audit_bloat")
    assert [f for f in audit_indexes_on(conn, ["bloat"]) if f.table == "public.audit_bloat"] == []
    conn.execute("DELETE FROM audit_bloat WHERE id % 10 <> 0")
    conn.execute("VACUUM ANALYZE audit_bloat")
    found = [f for f in audit_indexes_on(conn, ["bloat"]) if f.table == "public.audit_bloat"]
    assert [f.index for f in found] == ["public.audit_bloat_payload"]
    assert found[0].fix == 'REINDEX INDEX CONCURRENTLY "public"."audit_bloat_payload";'
    conn.execute(found[0].fix)
    conn.execute("ANALYZE audit_bloat")
    assert [f for f in audit_indexes_on(conn, ["bloat"]) if f.table == "public.audit_bloat"] == []


def test_write_cost_points_at_the_drops(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE audit_wide (a int, b int, c int, d int, e int, f int, g int, doc jsonb, doc2 jsonb)")
    for column in "abcdefg":
        conn.execute(sql.SQL("CREATE INDEX {} ON audit_wide ({})").format(sql.Identifier(f"audit_wide_{column}"), sql.Identifier(column)))
    conn.execute("CREATE INDEX audit_wide_ab ON audit_wide (a, b)")
    conn.execute("CREATE INDEX audit_wide_doc ON audit_wide USING gin (doc)")
    conn.execute("CREATE INDEX audit_wide_doc2 ON audit_wide USING gin (doc2)")
    found = [f for f in audit_indexes_on(conn, ["write_cost"]) if f.table == "public.audit_wide"]
    assert len(found) == 1
    assert "10 indexes" in found[0].detail and "2 GIN" in found[0].detail
    assert 'DROP INDEX CONCURRENTLY "public"."audit_wide_a";' in found[0].fix  # the redundant prefix


def test_cli_json_fail_on_and_read_only(conn: psycopg.Connection, db_url: str) -> None:
    env = {"TRACKSCHEMA_DATABASE_URL": db_url}
    clean = run_cli("audit", "indexes", "--json", "--fail-on", "duplicate,invalid", env=env)
    assert clean.returncode == 0, clean.stderr
    conn.execute("CREATE INDEX contacts_name_again ON contacts (last_name, first_name)")
    fingerprint = catalog_fingerprint(conn)
    failing = run_cli("audit", "indexes", "--json", "--fail-on", "duplicate", env=env)
    assert failing.returncode == 1
    findings = json.loads(failing.stdout)
    assert all(set(f) == {"kind", "table", "index", "detail", "fix"} for f in findings)
    assert any(f["kind"] == "duplicate" and f["index"] == "public.contacts_name_again" for f in findings)
    assert catalog_fingerprint(conn) == fingerprint  # the audit changed nothing
    human = run_cli("audit", "indexes", env=env)
    assert human.returncode == 0 and "contacts_name_again" in human.stdout
    everything = run_cli("audit", "--fail-on", "duplicate", env=env)
    assert everything.returncode == 1
    bad = run_cli("audit", "indexes", "--fail-on", "bogus", env=env)
    assert bad.returncode == 2 and "unknown finding kind" in bad.stderr
