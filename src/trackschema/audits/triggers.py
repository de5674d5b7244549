"""Trigger audit: is every table's `updated_at` maintained exactly once, is entity
tracking current, and is any trigger function left unused?

Findings (`kind`):
- `missing_updated_at_trigger`: a table has an `updated_at` column but no enabled
  BEFORE UPDATE ... FOR EACH ROW trigger calling `update_updated_at_column()` (none at
  all, a disabled one, or only a per-table copy of the function). Fix: create it (and
  drop the per-table copy's trigger).
- `duplicate_updated_at_trigger`: more than one trigger maintains `updated_at` on the
  table (the generic one twice, or the generic one plus a per-table copy: any function
  that assigns `NEW.updated_at`). Fix: drop the extra ones.
- `misconfigured_updated_at_trigger`: `update_updated_at_column()` attached in a way it
  cannot work (AFTER, FOR EACH STATEMENT, on INSERT, UPDATE OF some columns only, or to
  a table without `updated_at`, where every UPDATE would fail). Fix: drop and recreate.
- `stale_tracking_function`: a tracked table's columns changed since its tracking
  function was generated (trackschema.entity_tracking). Fix: call
  install_entity_tracking() again.
- `missing_tracking_trigger`: a tracked table lacks one of its three tracking triggers,
  or has it disabled. Fix: install_entity_tracking() again / ENABLE TRIGGER.
- `unused_trigger_function`: a function returning `trigger` that no trigger calls (left
  behind after triggers were consolidated). Fix: DROP FUNCTION.

Catalog reads only; nothing is changed. Tables in pg_catalog, information_schema and
those owned by extensions are skipped; for partitioned tables the parent is checked
(its row triggers are cloned to the partitions).

On Citus the coordinator's catalog is read: a trigger on a distributed table is defined
there and propagated to every shard, so what the audit reports holds for the shards. The
statement tracking functions (`track_<table>_change`) that revision 0100 replaces with row
triggers on distributed tables are reported as unused while they stay in the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from trackschema.audits import Finding
from trackschema.runtime.db import connect, ident_text
from trackschema.runtime.settings import Settings

GENERIC_FUNCTION = "update_updated_at_column"
GENERIC_TRIGGER = "update_updated_at"
TRACKING_TRIGGERS = ("track_insert", "track_update", "track_delete")

# pg_trigger.tgtype bits
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE, _INSTEAD = 1, 2, 4, 8, 16, 32, 64

# A function body that assigns NEW.updated_at maintains updated_at (a per-table copy).
_ASSIGNS_UPDATED_AT = re.compile(r"\bNEW\s*\.\s*\"?updated_at\"?\s*:?=", re.IGNORECASE)

_USER_SCHEMA = """
    n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
"""


@dataclass(frozen=True)
class _Trigger:
    table_oid: int
    schema: str
    table: str
    table_has_updated_at: bool
    name: str
    enabled: bool
    tgtype: int
    column_limited: bool
    function: str  # schema-qualified, for display
    function_name: str
    source: str

    @property
    def is_generic(self) -> bool:
        return self.function_name == GENERIC_FUNCTION

    @property
    def maintains_updated_at(self) -> bool:
        return self.is_generic or bool(_ASSIGNS_UPDATED_AT.search(self.source or ""))

    @property
    def well_formed(self) -> bool:
        """BEFORE UPDATE ... FOR EACH ROW, every column: the only shape that can maintain updated_at."""
        t = self.tgtype
        return bool(t & _ROW) and bool(t & _BEFORE) and not (t & _INSTEAD) and bool(t & _UPDATE) and not self.column_limited

    def describe_shape(self) -> str:
        t = self.tgtype
        when = "INSTEAD OF" if t & _INSTEAD else "BEFORE" if t & _BEFORE else "AFTER"
        events = [name for bit, name in ((_INSERT, "INSERT"), (_UPDATE, "UPDATE"), (_DELETE, "DELETE"), (_TRUNCATE, "TRUNCATE")) if t & bit]
        level = "ROW" if t & _ROW else "STATEMENT"
        cols = " OF some columns" if self.column_limited else ""
        return f"{when} {' OR '.join(events)}{cols} FOR EACH {level}"


def audit_triggers(settings: Settings) -> list[Finding]:
    """Connect and audit; see `audit_triggers_on`."""
    with connect(settings.require_url(), application_name="trackschema-audit") as conn:
        return audit_triggers_on(conn)


def audit_triggers_on(conn: psycopg.Connection) -> list[Finding]:
    """Every finding of the module docstring, ordered by kind and table."""
    tables = _tables_with_updated_at(conn)
    triggers = _user_triggers(conn)
    findings = _updated_at_findings(conn, tables, triggers)
    findings += _tracking_findings(conn)
    findings += _unused_function_findings(conn)
    return sorted(findings, key=lambda f: (f.kind, f.table, f.index))


def _tables_with_updated_at(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    rows = conn.execute(sql.SQL(
        """SELECT c.oid::int8, n.nspname, c.relname
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped AND a.attnum > 0
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {user_schema}
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
             ORDER BY n.nspname, c.relname""").format(user_schema=sql.SQL(_USER_SCHEMA))
    ).fetchall()
    return {oid: (schema, name) for oid, schema, name in rows}


def _user_triggers(conn: psycopg.Connection) -> list[_Trigger]:
    rows = conn.execute(
        """SELECT t.tgrelid::int8, n.nspname, c.relname,
                  EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped AND a.attnum > 0),
                  t.tgname, t.tgenabled <> 'D', t.tgtype::int, cardinality(t.tgattr::int2[]) > 0,
                  format('%I.%I', pn.nspname, p.proname), p.proname, coalesce(p.prosrc, '')
             FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_proc p ON p.oid = t.tgfoid
             JOIN pg_namespace pn ON pn.oid = p.pronamespace
            WHERE NOT t.tgisinternal AND t.tgparentid = 0
            ORDER BY n.nspname, c.relname, t.tgname"""
    ).fetchall()
    return [_Trigger(*row) for row in rows]


def _create_generic(conn: psycopg.Connection, schema: str, table: str) -> str:
    return (
        f"CREATE TRIGGER {GENERIC_TRIGGER} BEFORE UPDATE ON {ident_text(conn, schema, table)} "
        f"FOR EACH ROW EXECUTE FUNCTION {GENERIC_FUNCTION}();"
    )


def _drop(conn: psycopg.Connection, trigger: str, schema: str, table: str) -> str:
    return f"DROP TRIGGER {ident_text(conn, trigger)} ON {ident_text(conn, schema, table)};"


def _updated_at_findings(conn: psycopg.Connection, tables: dict[int, tuple[str, str]], triggers: list[_Trigger]) -> list[Finding]:
    findings: list[Finding] = []
    by_table: dict[int, list[_Trigger]] = {}
    for trig in triggers:
        by_table.setdefault(trig.table_oid, []).append(trig)

    for oid, (schema, table) in tables.items():
        label = f"{schema}.{table}"
        mine = by_table.get(oid, [])
        maintaining = [t for t in mine if t.maintains_updated_at and t.well_formed and t.enabled]
        generic = [t for t in maintaining if t.is_generic]
        if not generic:
            disabled = [t for t in mine if t.is_generic and t.well_formed and not t.enabled]
            copies = [t for t in maintaining if not t.is_generic]
            if any(t.is_generic and not t.well_formed for t in mine) and not disabled:
                continue  # reported as misconfigured_updated_at_trigger, whose fix recreates it
            if disabled:
                fix = f"ALTER TABLE {ident_text(conn, schema, table)} ENABLE TRIGGER {ident_text(conn, disabled[0].name)};"
                detail = f"trigger {disabled[0].name} calls {GENERIC_FUNCTION}() but is disabled"
            elif copies:
                fix = " ".join([_create_generic(conn, schema, table)] + [_drop(conn, t.name, schema, table) for t in copies])
                detail = "updated_at is maintained by a per-table copy: " + ", ".join(f"trigger {t.name} calling {t.function}()" for t in copies)
            else:
                fix = _create_generic(conn, schema, table)
                detail = f"updated_at is never bumped: no trigger calls {GENERIC_FUNCTION}()"
            findings.append(Finding("missing_updated_at_trigger", label, "", detail, fix))
        elif len(maintaining) > 1:
            keep = next((t for t in generic if t.name == GENERIC_TRIGGER), generic[0])
            fix = " ".join(_drop(conn, t.name, schema, table) for t in maintaining if t is not keep)
            detail = f"{len(maintaining)} triggers maintain updated_at: " + ", ".join(f"{t.name} ({t.function}())" for t in maintaining)
            findings.append(Finding("duplicate_updated_at_trigger", label, "", detail, fix))

    good_generic = {t.table_oid for t in triggers if t.is_generic and t.well_formed and t.enabled}
    for trig in triggers:
        if not trig.is_generic:
            continue
        label = f"{trig.schema}.{trig.table}"
        if not trig.table_has_updated_at:
            findings.append(Finding(
                "misconfigured_updated_at_trigger", label, "",
                f"trigger {trig.name} calls {GENERIC_FUNCTION}() but the table has no updated_at column: every UPDATE fails",
                _drop(conn, trig.name, trig.schema, trig.table),
            ))
        elif not trig.well_formed:
            findings.append(Finding(
                "misconfigured_updated_at_trigger", label, "",
                f"trigger {trig.name} is {trig.describe_shape()}; it must be BEFORE UPDATE FOR EACH ROW on every column",
                _drop(conn, trig.name, trig.schema, trig.table)
                + ("" if trig.table_oid in good_generic else " " + _create_generic(conn, trig.schema, trig.table)),
            ))
    return findings


def _tracking_findings(conn: psycopg.Connection) -> list[Finding]:
    """Tracked tables whose generated function or triggers drifted from the table."""
    if conn.execute("SELECT to_regclass('trackschema.entity_tracking') IS NULL").fetchone()[0]:  # type: ignore[index]
        return []
    rows = conn.execute(
        """SELECT et.table_name, et.entity_column, et.tracked_columns, et.ignored_columns, to_regclass(et.table_name)::oid::int8,
                  ARRAY(SELECT a.attname::text FROM pg_attribute a
                         WHERE a.attrelid = to_regclass(et.table_name) AND a.attnum > 0 AND NOT a.attisdropped
                         ORDER BY a.attnum)
             FROM trackschema.entity_tracking et ORDER BY et.table_name"""
    ).fetchall()
    findings: list[Finding] = []
    for table_name, entity_column, tracked, ignored, oid, current in rows:
        reinstall = "SELECT install_entity_tracking({}::regclass, {}{});".format(
            sql.Literal(table_name).as_string(conn), sql.Literal(entity_column).as_string(conn),
            "" if list(ignored) == ["updated_at"] else ", " + sql.Literal(list(ignored)).as_string(conn) + "::name[]",
        )
        if oid is None:
            findings.append(Finding(
                "stale_tracking_function", table_name, "", "the tracked table no longer exists",
                f"DELETE FROM trackschema.entity_tracking WHERE table_name = {sql.Literal(table_name).as_string(conn)};",
            ))
            continue
        if list(tracked) != list(current):
            added = [c for c in current if c not in tracked]
            dropped = [c for c in tracked if c not in current]
            parts = ([f"added {', '.join(added)}"] if added else []) + ([f"dropped {', '.join(dropped)}"] if dropped else [])
            findings.append(Finding(
                "stale_tracking_function", table_name, "",
                "columns changed since the tracking function was generated (" + ("; ".join(parts) or "reordered") + "): changes to them are not tracked",
                reinstall,
            ))
        present = dict(conn.execute(
            "SELECT tgname, tgenabled <> 'D' FROM pg_trigger WHERE tgrelid = %s::oid AND tgname = ANY (%s)",
            (oid, list(TRACKING_TRIGGERS)),
        ).fetchall())
        missing = [t for t in TRACKING_TRIGGERS if t not in present]
        disabled = [t for t in TRACKING_TRIGGERS if present.get(t) is False]
        if missing:
            findings.append(Finding("missing_tracking_trigger", table_name, "",
                                    f"tracking trigger(s) {', '.join(missing)} missing: those changes are not tracked", reinstall))
        if disabled:
            schema, _, table = table_name.rpartition(".")
            fix = " ".join(f"ALTER TABLE {ident_text(conn, schema, table)} ENABLE TRIGGER {ident_text(conn, t)};" for t in disabled)
            findings.append(Finding("missing_tracking_trigger", table_name, "",
                                    f"tracking trigger(s) {', '.join(disabled)} disabled: those changes are not tracked", fix))
    return findings


def _unused_function_findings(conn: psycopg.Connection) -> list[Finding]:
    rows = conn.execute(sql.SQL(
        """SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.prorettype = 'trigger'::regtype AND {user_schema}
               AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
             ORDER BY n.nspname, p.proname""").format(user_schema=sql.SQL(_USER_SCHEMA))
    ).fetchall()
    return [
        Finding(
            "unused_trigger_function", "", "",
            f"trigger function {schema}.{name}({args}) is attached to no table",
            f"DROP FUNCTION {ident_text(conn, schema, name)}({args});",
        )
        for schema, name, args in rows
    ]
