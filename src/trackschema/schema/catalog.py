"""Catalog snapshots: what a database's schema is, read from pg_catalog, and what differs
between two of them.

`snapshot_on(conn)` describes every object of the given schemas as one normalized line per
object, grouped by kind (`KINDS`): a mapping name -> description. Descriptions come from
PostgreSQL's own deparsers (`pg_get_indexdef`, `pg_get_constraintdef`, `pg_get_expr`,
`pg_get_triggerdef`, `format_type`), read in a transaction with fixed settings
(`search_path = pg_catalog`, so every name is schema-qualified; `TimeZone = UTC`, so
partition bounds read the same everywhere). Function, view and materialized-view bodies
are compared by a SHA-256 of their full definition (`pg_get_functiondef`,
`pg_get_viewdef`), shown with a short summary.

Never part of a description: statistics (reltuples, relpages, pg_statistic, n_live_tup),
OIDs, relfilenodes, sequence positions, whether a materialized view is populated, and
names PostgreSQL makes up: internal triggers (`RI_ConstraintTrigger_*`, named from OIDs)
are left out (their foreign key is compared), and an index, constraint or trigger that a
partition inherits from its parent is named after the parent's object
(`public.activity_log_pkey on public.activity_log_p2027_01`), not after the name
PostgreSQL chose for the copy. Objects that belong to an extension are left out (the
extension and its version are compared). The role that owns an object shows as `(owner)`
in grants, so a scratch database built by another role compares equal.

`compare(live, expected)` lists the differences, each with what is there and what should
be. Objects of a table that exists on one side only are folded into that table's line.
With `rolling_partitions` (the default), the monthly partitions of the tables recorded in
`trackschema.partitioned_tables` may differ at the edges of the range, as `partitions
ensure` (months ahead) and `partitions retire` (old months, the history partition) move
it with the clock; a gap in the middle of the range, or a partition whose bounds are not
its month's, is drift. See `compare`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import psycopg
from psycopg import sql

# Every kind a snapshot holds, in the order differences are listed within an object.
KINDS = (
    "schema", "extension", "type", "table", "partition", "rls", "column", "column order",
    "constraint", "index", "trigger", "policy", "view", "matview", "sequence", "function",
    "grant", "comment",
)
# Kinds whose entries are the relation itself (its own line; its objects fold into it).
RELATION_KINDS = ("table", "view", "matview", "sequence")

# Read with these, in the snapshot's transaction only (SET LOCAL).
SESSION_SETTINGS = (
    ("search_path", "pg_catalog"),  # every name outside pg_catalog comes out schema-qualified
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)

_PRIVILEGE_ORDER = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
                    "USAGE", "CREATE", "EXECUTE", "CONNECT", "TEMPORARY")
_RELKIND_LABEL = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "materialized view", "S": "sequence"}
_FAR_PAST = datetime.min.replace(tzinfo=UTC)
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Entry:
    """One object: its kind, its name, its normalized description; `relation` is the table,
    view or sequence it belongs to (None for functions, types, schemas...), `group` the
    object it is listed under (`table public.contacts`)."""

    kind: str
    name: str
    description: str
    relation: str | None = None
    group: str = ""
    inherited_from: str | None = None  # a partition's copy of this index or constraint of its parent


@dataclass(frozen=True, order=True)
class PartitionBound:
    """A partition as the rolling-partition rules need it: `lower`/`upper` are the bound
    literals of a one-column range partition (None for MINVALUE/MAXVALUE); `ranged` is
    False for a default, list or hash partition, or one with several key columns."""

    parent: str
    partition: str
    lower: str | None
    upper: str | None
    ranged: bool
    description: str


@dataclass(frozen=True)
class CatalogSnapshot:
    """A normalized, hashable description of a database's schema (see the module docstring).

    `entries` is every object, sorted; `snapshot[kind]` (or `objects[kind]`) is the mapping
    name -> description of one kind. `partitions` repeats the partitions' bounds for the
    rolling rules, and `rolling` is what `trackschema.partitioned_tables` records: (parent,
    history partition) per table trackschema partitions by month (empty before revision
    0030, or when the registry cannot be read). Two snapshots of identical schemas are equal."""

    schemas: tuple[str, ...]
    entries: tuple[Entry, ...]
    partitions: tuple[PartitionBound, ...] = ()
    rolling: tuple[tuple[str, str | None], ...] = ()

    @cached_property
    def objects(self) -> Mapping[str, Mapping[str, str]]:
        """kind -> {name: description}, every kind of `KINDS` present (maybe empty)."""
        by_kind: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        for e in self.entries:
            by_kind.setdefault(e.kind, {})[e.name] = e.description
        return by_kind

    def __getitem__(self, kind: str) -> Mapping[str, str]:
        return self.objects.get(kind, {})

    def to_dict(self) -> dict[str, Any]:
        return {"schemas": list(self.schemas), "objects": {k: dict(v) for k, v in self.objects.items() if v},
                "rolling": [{"parent": p, "history": h} for p, h in self.rolling]}


@dataclass(frozen=True)
class Difference:
    """One object that differs: what is `there` (the live database) and what it `should_be`
    (None: missing on that side). `object` is what it is listed under in a report
    (`table public.contacts`, `function public.f(integer)`)."""

    kind: str
    name: str
    there: str | None
    should_be: str | None
    object: str = ""

    def to_dict(self) -> dict[str, str | None]:
        return {"object": self.object, "kind": self.kind, "name": self.name, "there": self.there, "should_be": self.should_be}


# --- reading ------------------------------------------------------------------------------


def snapshot_on(conn: psycopg.Connection, *, schemas: tuple[str, ...] = ("public", "trackschema")) -> CatalogSnapshot:
    """Describe the objects of `schemas` on the open connection `conn`.

    Reads only, in one transaction of its own (a savepoint if `conn` is already in one),
    with the settings of `SESSION_SETTINGS` set locally and put back before it ends, so the
    caller's session is left as it was; works on a read-only connection. Reading the
    rolling-partition registry needs SELECT on `trackschema.partitioned_tables`; without it
    `rolling` is empty."""
    schema_list = list(dict.fromkeys(schemas))
    out = _Collector()
    with conn.transaction():
        previous = [(name, conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0])  # type: ignore[index]
                    for name, _ in SESSION_SETTINGS]
        for name, value in SESSION_SETTINGS:
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        _schemas(conn, schema_list, out)
        _extensions(conn, schema_list, out)
        _types(conn, schema_list, out)
        partitions = _relations(conn, schema_list, out)
        _columns(conn, schema_list, out)
        _indexes(conn, schema_list, out)
        _constraints(conn, schema_list, out)
        _triggers(conn, schema_list, out)
        _policies(conn, schema_list, out)
        _functions(conn, schema_list, out)
        _grants(conn, schema_list, out)
        rolling = _rolling_registry(conn)
        for name, value in previous:  # a caller's own transaction keeps its settings
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    return CatalogSnapshot(tuple(schema_list), tuple(sorted(out.entries.values())), tuple(sorted(partitions)), rolling)


class _Collector:
    """Entries by (kind, name); a name met twice gets its own PostgreSQL name appended, so
    nothing is silently overwritten."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}

    def add(self, kind: str, name: str, description: str, *, relation: str | None = None, group: str = "",
            alias: str | None = None, inherited_from: str | None = None) -> None:
        if (kind, name) in self.entries and alias:
            name = f"{name} ({alias})"
        while (kind, name) in self.entries:
            name += "'"
        self.entries[(kind, name)] = Entry(kind, name, description, relation, group, inherited_from)


def _q(*parts: str) -> str:
    """A dotted name for display and keys (unquoted: `public.contacts.id`)."""
    return ".".join(parts)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def one_line(text: str) -> str:
    """`text` with every run of whitespace outside quotes ('...' literals, "..." identifiers)
    made one space, and trimmed: deparsed expressions and definitions on one line, their
    literals untouched."""
    result: list[str] = []
    quote: str | None = None
    space = False
    for ch in text:
        if quote:
            result.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch.isspace():
            space = True
            continue
        if space and result:
            result.append(" ")
        space = False
        if ch in "'\"":
            quote = ch
        result.append(ch)
    return "".join(result)


def _not_member(catalog: str, oid_column: str) -> sql.Composed:
    """`NOT EXISTS (...)`: the object `oid_column` (a catalog row of `catalog`) is not part of
    an extension. Both arguments are fixed names written in this module."""
    return sql.SQL("""NOT EXISTS (SELECT 1 FROM pg_depend dep
                    WHERE dep.classid = {}::regclass AND dep.objid = {} AND dep.deptype = 'e')""").format(
        sql.Literal(catalog), sql.SQL(oid_column))


def _rows(conn: psycopg.Connection, query: str | sql.Composable, schemas: list[str]) -> list[tuple[Any, ...]]:
    return conn.execute(query, {"schemas": schemas}).fetchall()  # type: ignore[arg-type]


def _schemas(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    for name, comment in _rows(conn, """
            SELECT n.nspname, obj_description(n.oid, 'pg_namespace')
              FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)""", schemas):
        out.add("schema", name, "schema", group=f"schema {name}")
        if comment is not None:
            out.add("comment", f"schema {name}", comment, group=f"schema {name}")


def _extensions(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    for name, version, schema in _rows(conn, """
            SELECT e.extname, e.extversion, n.nspname
              FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
             WHERE n.nspname = ANY(%(schemas)s)""", schemas):
        out.add("extension", name, f"version {version} in schema {schema}", group=f"extension {name}")


def _types(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    query = sql.SQL("""
        SELECT n.nspname, t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
               pg_get_expr(t.typdefaultbin, 0),
               (SELECT string_agg(format('CONSTRAINT %%I %%s', c.conname, pg_get_constraintdef(c.oid)), ' ' ORDER BY c.conname)
                  FROM pg_constraint c WHERE c.contypid = t.oid),
               (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
               (SELECT string_agg(format('%%I %%s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
               (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid),
               obj_description(t.oid, 'pg_type')
          FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('d', 'e', 'r', 'c')
           AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
           AND {member}""").format(member=_not_member("pg_type", "t.oid"))
    for schema, name, typtype, base, notnull, default, checks, labels, attrs, subtype, comment in _rows(conn, query, schemas):
        if typtype == "d":
            text = f"domain over {base}" + (" NOT NULL" if notnull else "") + (f" DEFAULT {one_line(default)}" if default else "")
            text += f" {one_line(checks)}" if checks else ""
        elif typtype == "e":
            text = f"enum ({labels or ''})"
        elif typtype == "r":
            text = f"range over {subtype}"
        else:
            text = f"composite ({attrs or ''})"
        key = _q(schema, name)
        out.add("type", key, text, group=f"type {key}")
        if comment is not None:
            out.add("comment", f"type {key}", comment, group=f"type {key}")


def _relations(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> list[PartitionBound]:
    """Tables, partitions, views, materialized views, sequences, RLS flags, column order."""
    query = sql.SQL("""
        SELECT n.nspname, c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
               c.relreplident, CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
               array_to_string(c.reloptions, ', '), am.amname,
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
               obj_description(c.oid, 'pg_class'),
               CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
               pn.nspname, pc.relname, coalesce(h.inhdetachpending, false),
               (SELECT string_agg(format('%%I.%%I', xn.nspname, xc.relname), ', ' ORDER BY x.inhseqno)
                  FROM pg_inherits x JOIN pg_class xc ON xc.oid = x.inhparent JOIN pg_namespace xn ON xn.oid = xc.relnamespace
                 WHERE x.inhrelid = c.oid AND NOT c.relispartition),
               (SELECT format('%%s START %%s INCREMENT %%s MINVALUE %%s MAXVALUE %%s CACHE %%s%%s', format_type(s.seqtypid, NULL),
                              s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END)
                  FROM pg_sequence s WHERE s.seqrelid = c.oid),
               (SELECT format('%%s.%%s.%%s', tn.nspname, t.relname, a.attname)
                  FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1),
               (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f'))
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_am am ON am.oid = c.relam
          LEFT JOIN pg_inherits h ON h.inhrelid = c.oid AND c.relispartition
          LEFT JOIN pg_class pc ON pc.oid = h.inhparent
          LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
           AND {member}""").format(member=_not_member("pg_class", "c.oid"))
    partitions: list[PartitionBound] = []
    for (schema, name, relkind, persistence, rls, force_rls, replident, partkey, options, am, viewdef, comment,
         bound, parent_schema, parent_name, detach_pending, inherits, sequence, owned_by, columns) in _rows(conn, query, schemas):
        key = _q(schema, name)
        label = _RELKIND_LABEL[relkind]
        group = f"{label} {key}"
        extras = (f" USING {am}" if am and am != "heap" else "") + (f" WITH ({options})" if options else "")
        if relkind in ("r", "p", "f"):
            text = {"r": "table", "p": f"partitioned table PARTITION BY {partkey}", "f": "foreign table"}[relkind]
            if persistence == "u":
                text = "unlogged " + text
            if inherits:
                text += f" INHERITS ({inherits})"
            text += extras + {"d": "", "n": " REPLICA IDENTITY NOTHING", "f": " REPLICA IDENTITY FULL",
                              "i": " REPLICA IDENTITY USING INDEX"}.get(replident, "")
            out.add("table", key, text, relation=key, group=group)
            if rls or force_rls:
                out.add("rls", key, ", ".join(w for w, on in (("enabled", rls), ("forced", force_rls)) if on), relation=key, group=group)
            if columns:
                out.add("column order", key, columns, relation=key, group=group)
        elif relkind in ("v", "m"):
            kind = "view" if relkind == "v" else "matview"
            out.add(kind, key, f"definition {_digest(viewdef)}{extras}", relation=key, group=group)
        else:
            out.add("sequence", key, (sequence or "sequence") + (f" OWNED BY {owned_by}" if owned_by else ""), relation=key, group=group)
        if comment is not None:
            out.add("comment", f"{label} {key}", comment, relation=key, group=group)
        if bound is not None:
            parent = _q(parent_schema, parent_name)
            text = f"of {parent} {bound}" + (" (DETACH PENDING)" if detach_pending else "")
            out.add("partition", key, text, relation=key, group=f"table {parent}")
            lower, upper, ranged = _range_bounds(bound)
            partitions.append(PartitionBound(parent, key, lower, upper, ranged, text))
    return partitions


def _range_bounds(bound: str) -> tuple[str | None, str | None, bool]:
    """The FROM and TO literals of `FOR VALUES FROM ('x') TO ('y')` (None for MINVALUE /
    MAXVALUE), and whether the bound is such a one-column range at all."""
    prefix, middle = "FOR VALUES FROM (", ") TO ("
    if not bound.startswith(prefix) or not bound.endswith(")") or middle not in bound:
        return None, None, False
    lower, upper = bound[len(prefix):-1].split(middle, 1)

    def literal(text: str) -> tuple[str | None, bool]:
        if text in ("MINVALUE", "MAXVALUE"):
            return None, True
        if len(text) >= 2 and text[0] == "'" and text[-1] == "'" and "'" not in text[1:-1]:
            return text[1:-1], True
        return None, False  # several columns, or a literal this reading does not take apart

    (lo, lo_ok), (hi, hi_ok) = literal(lower), literal(upper)
    return (lo, hi, True) if lo_ok and hi_ok else (None, None, False)


def _columns(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    query = sql.SQL("""
        SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               CASE WHEN a.attcollation <> t.typcollation THEN
                    (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co
                       JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END,
               col_description(c.oid, a.attnum)
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped
           AND {member}""").format(member=_not_member("pg_class", "c.oid"))
    for schema, table, column, type_name, notnull, expr, identity, generated, collation, comment in _rows(conn, query, schemas):
        relation = _q(schema, table)
        text = type_name + (f" COLLATE {collation}" if collation else "") + (" NOT NULL" if notnull else " NULL")
        if generated == "s":
            text += f" GENERATED ALWAYS AS ({one_line(expr or '')}) STORED"
        elif expr is not None:
            text += f" DEFAULT {one_line(expr)}"
        if identity:
            text += " GENERATED ALWAYS AS IDENTITY" if identity == "a" else " GENERATED BY DEFAULT AS IDENTITY"
        key = _q(relation, column)
        out.add("column", key, text, relation=relation, group=f"table {relation}")
        if comment is not None:
            out.add("comment", f"column {key}", comment, relation=relation, group=f"table {relation}")


def _indexes(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    query = """
        SELECT n.nspname, ic.relname, quote_ident(ic.relname), tn.nspname, t.relname, t.relkind,
               pg_get_indexdef(i.indexrelid), i.indisunique, i.indisvalid, i.indisready,
               pin.nspname, pi.relname, obj_description(ic.oid, 'pg_class')
          FROM pg_index i
          JOIN pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_namespace n ON n.oid = ic.relnamespace
          JOIN pg_class t ON t.oid = i.indrelid
          JOIN pg_namespace tn ON tn.oid = t.relnamespace
          LEFT JOIN pg_inherits h ON h.inhrelid = i.indexrelid
          LEFT JOIN pg_class pi ON pi.oid = h.inhparent
          LEFT JOIN pg_namespace pin ON pin.oid = pi.relnamespace
         WHERE tn.nspname = ANY(%(schemas)s) AND t.relkind IN ('r', 'p', 'm', 'f')
         ORDER BY n.nspname, ic.relname"""
    for (schema, name, quoted, table_schema, table, relkind, definition, unique, valid, ready,
         parent_schema, parent, comment) in _rows(conn, query, schemas):
        relation = _q(table_schema, table)
        head = "CREATE UNIQUE INDEX " if unique else "CREATE INDEX "
        lead = f"{head}{quoted} ON "
        text = head[len("CREATE "):] + "ON " + definition[len(lead):] if definition.startswith(lead) else definition
        text = one_line(text) + ("" if valid else " INVALID") + ("" if ready else " (not ready)")
        # a partition's copy of its parent's index is known by the parent index: PostgreSQL names the copy
        inherited = _q(parent_schema, parent) if parent is not None else None
        key = f"{inherited} on {relation}" if inherited else _q(schema, name)
        group = f"{_RELKIND_LABEL[relkind]} {relation}"
        out.add("index", key, text, relation=relation, group=group, alias=name, inherited_from=inherited)
        if comment is not None:
            out.add("comment", f"index {key}", comment, relation=relation, group=group)


def _constraints(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    query = """
        SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid),
               pcon.conname, pn.nspname, pc.relname, fn.nspname, fc.relname,
               obj_description(con.oid, 'pg_constraint')
          FROM pg_constraint con
          JOIN pg_class c ON c.oid = con.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_constraint pcon ON pcon.oid = con.conparentid
          LEFT JOIN pg_class pc ON pc.oid = pcon.conrelid
          LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
          LEFT JOIN pg_class fc ON fc.oid = con.confrelid
          LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
         WHERE con.conrelid <> 0 AND n.nspname = ANY(%(schemas)s)
         ORDER BY n.nspname, c.relname, con.conname"""
    for (schema, table, name, definition, parent_name, parent_schema, parent_table, ref_schema, ref_table,
         comment) in _rows(conn, query, schemas):
        relation = _q(schema, table)
        inherited = _q(parent_schema, parent_table, parent_name) if parent_name is not None else None
        if inherited is None:
            key = _q(relation, name)
        elif (parent_schema, parent_table) == (schema, table):
            # a foreign key to a partitioned table has one copy per referenced partition
            relation = _q(ref_schema, ref_table)
            key = f"{inherited} to {relation}"
        else:
            key = f"{inherited} on {relation}"
        out.add("constraint", key, one_line(definition), relation=relation, group=f"table {_q(schema, table)}", alias=name,
                inherited_from=inherited)
        if comment is not None:
            out.add("comment", f"constraint {key}", comment, relation=relation, group=f"table {_q(schema, table)}")


def _triggers(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    query = """
        SELECT n.nspname, c.relname, c.relkind, t.tgname, quote_ident(t.tgname), pg_get_triggerdef(t.oid), t.tgenabled
          FROM pg_trigger t
          JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT t.tgisinternal AND n.nspname = ANY(%(schemas)s)"""
    states = {"O": "", "D": " (DISABLED)", "R": " (ENABLE REPLICA)", "A": " (ENABLE ALWAYS)"}
    for schema, table, relkind, name, quoted, definition, enabled in _rows(conn, query, schemas):
        relation = _q(schema, table)
        text = definition
        for lead in (f"CREATE TRIGGER {quoted} ", f"CREATE CONSTRAINT TRIGGER {quoted} "):
            if definition.startswith(lead):
                text = ("CONSTRAINT " if "CONSTRAINT" in lead else "") + definition[len(lead):]
        out.add("trigger", _q(relation, name), one_line(text) + states.get(enabled, f" (tgenabled {enabled})"),
                relation=relation, group=f"{_RELKIND_LABEL.get(relkind, 'table')} {relation}")


def _policies(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    query = """
        SELECT n.nspname, c.relname, p.polname, p.polpermissive, p.polcmd,
               ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) r ORDER BY 1),
               pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
          FROM pg_policy p
          JOIN pg_class c ON c.oid = p.polrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s)"""
    commands = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
    for schema, table, name, permissive, command, roles, qual, check in _rows(conn, query, schemas):
        relation = _q(schema, table)
        text = f"{'PERMISSIVE' if permissive else 'RESTRICTIVE'} FOR {commands.get(command, command)} TO {', '.join(roles)}"
        text += (f" USING ({one_line(qual)})" if qual is not None else "") + (f" WITH CHECK ({one_line(check)})" if check is not None else "")
        out.add("policy", _q(relation, name), text, relation=relation, group=f"table {relation}")


def _functions(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    query = sql.SQL("""
        SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind,
               CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END,
               CASE WHEN p.prokind = 'a' THEN
                    (SELECT format('SFUNC %%s STYPE %%s FINALFUNC %%s COMBINEFUNC %%s INITCOND %%L', a.aggtransfn::regprocedure,
                                   format_type(a.aggtranstype, NULL), a.aggfinalfn::regprocedure, a.aggcombinefn::regprocedure, a.agginitval)
                       FROM pg_aggregate a WHERE a.aggfnoid = p.oid) END,
               pg_get_function_result(p.oid), l.lanname, p.provolatile, p.prosecdef,
               obj_description(p.oid, 'pg_proc')
          FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
          JOIN pg_language l ON l.oid = p.prolang
         WHERE n.nspname = ANY(%(schemas)s) AND {member}""").format(member=_not_member("pg_proc", "p.oid"))
    kinds = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window function"}
    volatility = {"i": "immutable", "s": "stable", "v": "volatile"}
    for (schema, name, arguments, prokind, definition, aggregate, result, language, volatile, secdef,
         comment) in _rows(conn, query, schemas):
        key = f"{_q(schema, name)}({arguments})"
        word = kinds.get(prokind, "function")
        text = word + (f" returns {result}" if result else "") + f", {language}, {volatility.get(volatile, volatile)}"
        text += (", SECURITY DEFINER" if secdef else "") + f"; definition {_digest(definition or aggregate or '')}"
        group = f"{'procedure' if prokind == 'p' else 'function'} {key}"
        out.add("function", key, text, group=group)
        if comment is not None:
            out.add("comment", f"{word} {key}", comment, group=group)


def _grants(conn: psycopg.Connection, schemas: list[str], out: _Collector) -> None:
    """Privileges from aclexplode, a NULL ACL read as its default (`acldefault`), so an
    object whose ACL was written out explicitly but equals the default compares equal."""
    query = sql.SQL("""
        WITH acls (objkind, schema_name, object_name, column_name, owner, acl) AS (
            SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
                   n.nspname::text, c.relname::text, NULL::text, c.relowner,
                   coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND {relations}
            UNION ALL
            SELECT 'column', n.nspname::text, c.relname::text, a.attname::text, c.relowner, a.attacl
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY(%(schemas)s) AND a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
            UNION ALL
            SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, n.nspname::text,
                   p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', NULL::text, p.proowner,
                   coalesce(p.proacl, acldefault('f', p.proowner))
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = ANY(%(schemas)s) AND {routines}
            UNION ALL
            SELECT 'schema', NULL::text, n.nspname::text, NULL::text, n.nspowner, coalesce(n.nspacl, acldefault('n', n.nspowner))
              FROM pg_namespace n
             WHERE n.nspname = ANY(%(schemas)s)
            UNION ALL
            SELECT 'type', n.nspname::text, t.typname::text, NULL::text, t.typowner, coalesce(t.typacl, acldefault('T', t.typowner))
              FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('d', 'e', 'r') AND {types})
        SELECT g.objkind, g.schema_name, g.object_name, g.column_name,
               CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = g.owner THEN '(owner)' ELSE pg_get_userbyid(x.grantee)::text END,
               CASE WHEN x.grantor = g.owner THEN '(owner)' ELSE pg_get_userbyid(x.grantor)::text END,
               x.privilege_type, x.is_grantable
          FROM acls g CROSS JOIN LATERAL aclexplode(g.acl) x""").format(
        relations=_not_member("pg_class", "c.oid"), routines=_not_member("pg_proc", "p.oid"), types=_not_member("pg_type", "t.oid"))
    grouped: dict[tuple[str, str, str, str, str | None, str], list[tuple[str, bool]]] = defaultdict(list)
    for objkind, schema, name, column, grantee, grantor, privilege, grantable in _rows(conn, query, schemas):
        target = name if schema is None else _q(schema, name)
        relation = target if objkind in ("table", "sequence", "view", "materialized view") else None
        if column is not None:
            relation, target = target, _q(target, column)
        grouped[(objkind, target, grantee, grantor, relation, schema or "")].append((privilege, grantable))
    for (objkind, target, grantee, grantor, relation, _schema), privileges in grouped.items():
        order = {p: i for i, p in enumerate(_PRIVILEGE_ORDER)}
        text = ", ".join(p + (" WITH GRANT OPTION" if g else "") for p, g in sorted(set(privileges), key=lambda pg: (order.get(pg[0], 99), pg[0])))
        key = f"{objkind} {target} TO {grantee}" + (f" BY {grantor}" if grantor != "(owner)" else "")
        if relation is not None:
            group = f"{'table' if objkind == 'column' else objkind} {relation}"
        else:
            group = f"{objkind} {target}"
        out.add("grant", key, text, relation=relation, group=group)


def _rolling_registry(conn: psycopg.Connection) -> tuple[tuple[str, str | None], ...]:
    """(parent, history partition) of every table in trackschema.partitioned_tables, or ()
    before revision 0030 or when this role may not read it."""
    row = conn.execute("""SELECT to_regclass('trackschema.partitioned_tables') IS NOT NULL
                            AND has_table_privilege('trackschema.partitioned_tables', 'SELECT')""").fetchone()
    if not row or not row[0]:
        return ()
    rows = conn.execute("""SELECT parent_schema, parent_name, history_partition FROM trackschema.partitioned_tables
                            ORDER BY parent_schema, parent_name""").fetchall()
    return tuple((_q(schema, name), _q(schema, history) if history else None) for schema, name, history in rows)


# --- comparing ----------------------------------------------------------------------------


def compare(live: CatalogSnapshot, expected: CatalogSnapshot, *, rolling_partitions: bool = True) -> list[Difference]:
    """What differs between `live` and `expected`: one `Difference` per object, `there`
    from `live`, `should_be` from `expected`, sorted by object then kind. Empty when the
    snapshots' entries are identical (with `rolling_partitions=False`, that is exactly when).

    A table, view or sequence present on one side only is one line: its columns, indexes,
    grants... are not listed again (a partition's line is its `partition` line). Likewise a
    partitioned table's index or constraint missing on one side is one line, not one more
    per partition that would have its copy.
    `column order` compares the order of the columns both sides have (a column missing
    on one side is its own line).

    With `rolling_partitions`, for each table recorded in `trackschema.partitioned_tables`:
    a partition on one side only is not drift when it is a monthly partition named and
    bounded as `partitions ensure` makes them (`<table>_pYYYY_MM`, one calendar month in UTC)
    or the table's history partition (from MINVALUE), unless it fills a gap the other side
    has inside the range both sides cover: then that gap is drift, reported as the missing
    partition (or as the uncovered range). The history partition's upper bound may differ
    (it is the month after the conversion ran). A partition of the same name with other
    bounds, or any other partition on one side only, is drift. Everything that belongs to a
    partition passed over this way (its indexes, constraints, triggers, grants) is passed
    over with it."""
    live_entries = {(e.kind, e.name): e for e in live.entries}
    expected_entries = {(e.kind, e.name): e for e in expected.entries}
    differences: list[Difference] = []
    if rolling_partitions:
        skip_live, skip_expected, tolerated, gaps = _rolling(live, expected)
        live_entries = {k: e for k, e in live_entries.items() if e.relation not in skip_live and not (e.kind == "partition" and e.name in tolerated)}
        expected_entries = {k: e for k, e in expected_entries.items() if e.relation not in skip_expected and not (e.kind == "partition" and e.name in tolerated)}
        differences.extend(gaps)

    def relations(entries: Mapping[tuple[str, str], Entry]) -> set[str]:
        return {e.name for e in entries.values() if e.kind in RELATION_KINDS}

    live_relations, expected_relations = relations(live_entries), relations(expected_entries)
    partitions = {e.name for e in (*live_entries.values(), *expected_entries.values()) if e.kind == "partition"}

    def own_line(e: Entry) -> bool:
        if e.relation in partitions:
            return e.kind == "partition"
        return e.kind in RELATION_KINDS and e.name == e.relation

    for key in sorted(live_entries.keys() | expected_entries.keys()):
        there, should = live_entries.get(key), expected_entries.get(key)
        if there is not None and should is not None:
            if there.description == should.description:
                continue
            if key[0] == "column order" and _same_order(there.description, should.description):
                continue
        entry = there or should
        assert entry is not None
        if entry.relation is not None and not own_line(entry) and not (entry.relation in live_relations and entry.relation in expected_relations):
            continue  # folded into its relation's own line
        if entry.inherited_from is not None and (there is None or should is None):
            parent_there, parent_should = live_entries.get((key[0], entry.inherited_from)), expected_entries.get((key[0], entry.inherited_from))
            if (there is None and parent_there is None and parent_should is not None) or (should is None and parent_should is None and parent_there is not None):
                continue  # folded into the line of the parent's index or constraint, missing on the same side
        differences.append(Difference(entry.kind, entry.name, there.description if there else None,
                                      should.description if should else None, entry.group))
    order = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(differences, key=lambda d: (d.object, order.get(d.kind, len(KINDS)), d.name))


def _same_order(there: str, should: str) -> bool:
    """Whether the columns both lists have come in the same order."""
    a, b = there.split(", "), should.split(", ")
    common = set(a) & set(b)
    return [c for c in a if c in common] == [c for c in b if c in common]


# --- rolling partitions -----------------------------------------------------------------------

Span = tuple[datetime, datetime]


def _instant(literal: str | None, *, default: datetime) -> datetime | None:
    """A bound literal as a UTC instant (`default` for MINVALUE/MAXVALUE); None when it is
    not a date or timestamp. A literal without an offset is read as UTC, as trackschema
    bounds its partitions."""
    if literal is None:
        return default
    try:
        value = datetime.fromisoformat(literal)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _span(p: PartitionBound) -> Span | None:
    lower, upper = _instant(p.lower, default=_FAR_PAST), _instant(p.upper, default=_FAR_FUTURE)
    if not p.ranged or lower is None or upper is None or lower >= upper:
        return None
    return lower, upper


def _is_monthly(p: PartitionBound, span: Span) -> bool:
    """A partition as `partitions ensure` makes it: one calendar month in UTC, named
    `<parent>_pYYYY_MM` (the parent's name cut at 52 characters) in the parent's schema."""
    lower, upper = span
    if lower == _FAR_PAST or (lower.day, lower.hour, lower.minute, lower.second, lower.microsecond) != (1, 0, 0, 0, 0):
        return False
    if upper != lower.replace(year=lower.year + lower.month // 12, month=lower.month % 12 + 1):
        return False
    parent_schema, _, parent_name = p.parent.partition(".")
    return p.partition == f"{parent_schema}.{parent_name[:52]}_p{lower:%Y_%m}"


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for lower, upper in sorted(spans):
        if merged and lower <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], upper))
        else:
            merged.append((lower, upper))
    return merged


def _subtract(spans: list[Span], minus: list[Span]) -> list[Span]:
    """The parts of merged `spans` that merged `minus` does not cover."""
    result: list[Span] = []
    for lower, upper in spans:
        cursor = lower
        for m_lower, m_upper in minus:
            if m_upper <= cursor or m_lower >= upper:
                continue
            if m_lower > cursor:
                result.append((cursor, m_lower))
            cursor = max(cursor, m_upper)
        if cursor < upper:
            result.append((cursor, upper))
    return result


def _intersect(spans: list[Span], window: Span) -> list[Span]:
    return [(max(lo, window[0]), min(hi, window[1])) for lo, hi in spans if max(lo, window[0]) < min(hi, window[1])]


def _shown(instant: datetime) -> str:
    if instant == _FAR_PAST:
        return "MINVALUE"
    if instant == _FAR_FUTURE:
        return "MAXVALUE"
    return instant.isoformat().replace("+00:00", "Z")


def _rolling(live: CatalogSnapshot, expected: CatalogSnapshot) -> tuple[set[str], set[str], set[str], list[Difference]]:
    """(partitions of `live` to pass over, those of `expected`, partitions whose bounds may
    differ, the gaps found) for the rolling-partition rules of `compare`."""
    histories = {h for _, h in (*live.rolling, *expected.rolling) if h}
    parents = sorted({p for p, _ in (*live.rolling, *expected.rolling)})
    skip_live: set[str] = set()
    skip_expected: set[str] = set()
    tolerated: set[str] = set()
    gaps: list[Difference] = []
    for parent in parents:
        sides = []
        for snapshot in (live, expected):
            spans = {}
            for p in snapshot.partitions:
                span = _span(p) if p.parent == parent else None
                if span is not None:
                    spans[p.partition] = (p, span)
            sides.append(spans)
        here, there = sides
        if not here or not there:
            continue  # no range partition at all on one side: everything is compared as it is
        reported: dict[int, list[Span]] = {0: [], 1: []}  # spans of one-sided partitions reported anyway
        for name in here.keys() | there.keys():
            a, b = here.get(name), there.get(name)
            if a is not None and b is not None:
                if a[1] != b[1] and name in histories and a[1][0] == b[1][0] == _FAR_PAST:
                    tolerated.add(name)  # the history partition ends where its conversion's month did
                elif a[1] != b[1]:
                    reported[0].append(a[1])  # wrong bounds: its own line, not a gap as well
                    reported[1].append(b[1])
                continue
            side, (p, span) = (0, a) if a is not None else (1, b)  # type: ignore[misc]
            if _is_monthly(p, span) or (p.partition in histories and span[0] == _FAR_PAST):
                (skip_live if side == 0 else skip_expected).add(name)
            else:
                reported[side].append(span)
        # inside the range both sides cover, both must cover the same instants
        hulls = [(min(s[0] for _, s in side.values()), max(s[1] for _, s in side.values())) for side in sides]
        window = (max(hulls[0][0], hulls[1][0]), min(hulls[0][1], hulls[1][1]))
        if window[0] >= window[1]:
            continue
        covered = [_merge(s for _, s in side.values()) for side in sides]
        for side in (0, 1):
            other = 1 - side
            missing = _subtract(_intersect(covered[other], window), covered[side])
            missing = _subtract(missing, _merge(reported[other]))  # those are listed as partitions already
            for lower, upper in _merge(missing):
                exact = [p for p, s in sides[other].values() if s == (lower, upper)]
                if exact:
                    p = exact[0]
                    gaps.append(Difference("partition", p.partition, p.description if other == 0 else None,
                                           p.description if other == 1 else None, f"table {parent}"))
                    continue
                cover = ", ".join(sorted(p.partition for p, s in sides[other].values() if s[0] < upper and lower < s[1]))
                text = f"covered by {cover}"
                gaps.append(Difference("partition", f"{parent} from {_shown(lower)} to {_shown(upper)}",
                                       text if other == 0 else "no partition", text if other == 1 else "no partition",
                                       f"table {parent}"))
    return skip_live, skip_expected, tolerated, gaps
