"""`trackschema audit triggers`: the coverage audit catches what it should, and each fix works."""

from __future__ import annotations

import json

import psycopg

from tests.conftest import run_cli
from trackschema.audits import Finding
from trackschema.audits.triggers import audit_triggers_on


def kinds(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.kind, f.table) for f in findings]


def apply_fixes(conn: psycopg.Connection, findings: list[Finding]) -> None:
    for finding in findings:
        conn.execute(finding.fix)


def test_head_is_clean_and_cli_passes_the_gate(db_url: str, conn: psycopg.Connection) -> None:
    assert audit_triggers_on(conn) == []
    result = run_cli("audit", "triggers", "--json", "--fail", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_table_without_the_trigger_is_caught_and_the_fix_works(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE widgets (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT now())")
    conn.execute('CREATE TABLE "Odd Name" (id int PRIMARY KEY, updated_at timestamptz)')
    findings = audit_triggers_on(conn)
    assert kinds(findings) == [("missing_updated_at_trigger", 'public.Odd Name'), ("missing_updated_at_trigger", "public.widgets")]
    assert findings[1].fix == (
        "CREATE TRIGGER update_updated_at BEFORE UPDATE ON \"public\".\"widgets\" FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();"
    )

    gate = run_cli("audit", "triggers", "--fail", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert gate.returncode == 1
    assert "missing_updated_at_trigger" in gate.stdout and "widgets" in gate.stdout
    gate_on = run_cli("audit", "triggers", "--fail-on", "missing_updated_at_trigger", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert gate_on.returncode == 1  # --fail-on, as for the other audits
    other = run_cli("audit", "triggers", "--fail-on", "stale_tracking_function", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert other.returncode == 0, other.stderr  # findings of another kind only
    listed = run_cli("audit", "triggers", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert listed.returncode == 0  # without --fail a finding is only reported
    assert [f["kind"] for f in json.loads(listed.stdout)] == ["missing_updated_at_trigger"] * 2

    apply_fixes(conn, findings)
    assert audit_triggers_on(conn) == []
    conn.execute("INSERT INTO widgets (id, name, updated_at) VALUES (1, 'a', '2020-01-01')")
    conn.execute("UPDATE widgets SET name = 'b'")
    assert conn.execute("SELECT updated_at > '2020-01-02' FROM widgets").fetchone()[0] is True  # type: ignore[index]


def test_per_table_copy_is_a_duplicate_then_an_unused_function(conn: psycopg.Connection) -> None:
    # the seed's "current pattern": a per-table copy of the function
    conn.execute(
        """CREATE FUNCTION update_contacts_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN NEW.updated_at = now(); RETURN NEW; END $$"""
    )
    conn.execute("CREATE TRIGGER update_contacts_updated_at BEFORE UPDATE ON contacts FOR EACH ROW EXECUTE FUNCTION update_contacts_updated_at()")
    findings = audit_triggers_on(conn)
    assert kinds(findings) == [("duplicate_updated_at_trigger", "public.contacts")]
    assert findings[0].fix == 'DROP TRIGGER "update_contacts_updated_at" ON "public"."contacts";'

    apply_fixes(conn, findings)
    findings = audit_triggers_on(conn)
    assert kinds(findings) == [("unused_trigger_function", "")]
    assert findings[0].fix == 'DROP FUNCTION "public"."update_contacts_updated_at"();'
    apply_fixes(conn, findings)
    assert audit_triggers_on(conn) == []


def test_only_a_per_table_copy_counts_as_missing(conn: psycopg.Connection) -> None:
    conn.execute("DROP TRIGGER update_updated_at ON addresses")
    conn.execute(
        """CREATE FUNCTION touch_addresses() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$"""
    )
    conn.execute("CREATE TRIGGER touch BEFORE UPDATE ON addresses FOR EACH ROW EXECUTE FUNCTION touch_addresses()")
    findings = audit_triggers_on(conn)
    assert kinds(findings) == [("missing_updated_at_trigger", "public.addresses")]
    assert "per-table copy" in findings[0].detail
    apply_fixes(conn, findings)
    assert kinds(audit_triggers_on(conn)) == [("unused_trigger_function", "")]


def test_disabled_and_misattached_triggers(conn: psycopg.Connection) -> None:
    conn.execute("ALTER TABLE roadmap_items DISABLE TRIGGER update_updated_at")
    conn.execute("DROP TRIGGER update_updated_at ON calendar_events")
    conn.execute("CREATE TRIGGER update_updated_at AFTER UPDATE ON calendar_events FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()")
    conn.execute("CREATE TRIGGER update_updated_at BEFORE UPDATE ON goal_events FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()")
    findings = audit_triggers_on(conn)
    assert kinds(findings) == [
        ("misconfigured_updated_at_trigger", "public.calendar_events"),
        ("misconfigured_updated_at_trigger", "public.goal_events"),
        ("missing_updated_at_trigger", "public.roadmap_items"),
    ]
    assert "AFTER UPDATE FOR EACH ROW" in findings[0].detail
    assert "no updated_at column" in findings[1].detail
    assert findings[2].fix == 'ALTER TABLE "public"."roadmap_items" ENABLE TRIGGER "update_updated_at";'
    apply_fixes(conn, findings)
    assert audit_triggers_on(conn) == []


def test_stale_tracking_function_and_missing_tracking_trigger(conn: psycopg.Connection) -> None:
    conn.execute("ALTER TABLE entities ADD COLUMN score integer")
    conn.execute("DROP TRIGGER track_delete ON contacts")
    conn.execute("ALTER TABLE addresses DISABLE TRIGGER track_update")
    findings = audit_triggers_on(conn)
    assert kinds(findings) == [
        ("missing_tracking_trigger", "public.addresses"),
        ("missing_tracking_trigger", "public.contacts"),
        ("stale_tracking_function", "public.entities"),
    ]
    assert "added score" in findings[2].detail
    assert findings[2].fix == "SELECT install_entity_tracking('public.entities'::regclass, 'id');"

    # before the fix a change of the new column is not seen; after it, it is
    conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
    conn.execute("INSERT INTO entities (entity_type_id) SELECT id FROM entity_types")
    apply_fixes(conn, findings)
    assert audit_triggers_on(conn) == []
    conn.execute("UPDATE entities SET score = 7")
    row = conn.execute("SELECT changed_columns, new_state FROM entity_events WHERE action = 'UPDATE'").fetchone()
    assert row == (["score"], {"score": 7})
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'contacts'::regclass AND tgname LIKE 'track_%'").fetchone()[0] == 3  # type: ignore[index]


def test_audit_error_is_one_line(tmp_path) -> None:  # noqa: ANN001
    result = run_cli("audit", "triggers", env={"TRACKSCHEMA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "cannot connect" in result.stderr
