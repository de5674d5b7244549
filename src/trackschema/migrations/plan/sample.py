"""What `plan` reads from the target, and the sample it copies into the scratch database.

Which tables to sample (the words of the pending revisions' offline SQL), up to a number of
rows of each read in one read-only REPEATABLE READ transaction (TABLESAMPLE on a big
table), the rows those rows reference through foreign keys, and loading them all into the
scratch database, referenced tables first; also every relation's size on the target, from
its catalog only.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter

import psycopg
from alembic import command
from psycopg import sql

from trackschema.migrations import runner as migrate
from trackschema.migrations.plan.result import first_line
from trackschema.runtime import db
from trackschema.runtime.settings import Settings


def named_tables(current: list[str], last: str, extra_version_locations: list[str] | None) -> str | None:
    """The pending revisions' offline SQL (`upgrade --sql FROM:TO`), whose words say which
    tables they touch; None when it cannot be rendered (then every table is sampled)."""
    start = current[0] if len(current) == 1 else "base" if not current else None
    if start is None:
        return None
    buffer = io.StringIO()
    cfg = migrate.alembic_config(Settings(), output=buffer, extra_version_locations=extra_version_locations)
    try:
        command.upgrade(cfg, f"{start}:{last}", sql=True)
    except Exception:  # noqa: BLE001 - a revision that cannot render offline: sample every table
        return None
    return buffer.getvalue()


@dataclass
class _Table:
    schema: str
    name: str
    columns: list[str] = field(default_factory=list)  # copied columns, scratch order
    types: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (type schema, type name) on the target
    rows: list[tuple[str | None, ...]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


@dataclass(frozen=True)
class _ForeignKey:
    child: tuple[str, str]
    parent: tuple[str, str]
    child_columns: tuple[str, ...]
    parent_columns: tuple[str, ...]


_SCRATCH_TABLES = """
SELECT n.nspname, c.relname,
       array(SELECT a.attname::text FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              ORDER BY a.attnum),
       (SELECT rn.nspname FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
         WHERE r.oid = coalesce(pg_catalog.pg_partition_root(c.oid), c.oid)),
       (SELECT r.relname FROM pg_catalog.pg_class r WHERE r.oid = coalesce(pg_catalog.pg_partition_root(c.oid), c.oid))
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""

_FOREIGN_KEYS = """
SELECT cn.nspname, cc.relname, pn.nspname, pc.relname,
       array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.i),
       array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.i)
  FROM pg_catalog.pg_constraint con
  JOIN pg_catalog.pg_class cc ON cc.oid = con.conrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace
  JOIN pg_catalog.pg_class pc ON pc.oid = con.confrelid JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0
"""

# References enforced by triggers instead of foreign keys (revision 0102 records them), in
# the shape of _FOREIGN_KEYS' rows; read only where the table exists.
_TRIGGER_REFERENCES = """
SELECT split_part(r.table_name, '.', 1), split_part(r.table_name, '.', 2),
       split_part(r.referenced_table, '.', 1), split_part(r.referenced_table, '.', 2), r.columns, r.referenced_columns
  FROM trackschema.trigger_references r
"""

_TARGET_COLUMNS = """
SELECT a.attname::text, tn.nspname, t.typname
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
 WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
"""

# Estimated rows of a table and, for a partitioned one, of its partitions (catalog only).
_TARGET_ROWS = """
WITH RECURSIVE tree(oid) AS (
    SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = %s AND c.relname = %s
    UNION ALL
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.oid
"""


def copy_sample(settings: Settings, scratch_url: str, named: str | None, limit: int, warnings: list[str]) -> dict[str, int]:
    """Copy up to `limit` rows of each table `named` mentions (every table when None) from the
    target into the scratch database, plus the rows they reference (foreign keys, and the
    references triggers enforce that `trackschema.trigger_references` lists, followed to the
    referenced tables' own references). Reads run on the target in one read-only
    REPEATABLE READ transaction; a table that cannot be read or loaded is skipped with a
    warning. Returns rows copied per table."""
    with db.connect(scratch_url, application_name="trackschema-plan") as conn:
        tables: dict[tuple[str, str], _Table] = {}
        roots: dict[tuple[str, str], tuple[str, str]] = {}
        for schema, name, columns, root_schema, root_name in conn.execute(_SCRATCH_TABLES).fetchall():
            if (root_schema, root_name) != (schema, name):
                roots[(schema, name)] = (root_schema, root_name)  # a partition: its root is sampled
                continue
            tables[(schema, name)] = _Table(schema, name, list(columns))
        references = conn.execute(_FOREIGN_KEYS).fetchall()
        if conn.execute("SELECT to_regclass('trackschema.trigger_references') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            references += conn.execute(_TRIGGER_REFERENCES).fetchall()
        fks = [_ForeignKey((r[0], r[1]), (r[2], r[3]), tuple(r[4]), tuple(r[5])) for r in references]
    wanted: set[tuple[str, str]] = set()
    for key in list(tables) + list(roots):
        if named is None or re.search(rf"(?<![\w$]){re.escape(key[1])}(?![\w$])", named, re.I):
            wanted.add(roots.get(key, key))
    if not wanted:
        return {}
    with db.connect(settings.require_url(), application_name="trackschema-plan") as target:
        target.execute("SET default_transaction_read_only = on")
        db.set_timeouts(target.cursor(), lock_timeout=settings.lock_timeout, statement_timeout=min(settings.statement_timeout, 120.0))
        target.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        target.read_only = True
        with target.transaction():
            for key in sorted(wanted):
                _read_sample(target, tables[key], limit, warnings)
            _follow_references(target, tables, fks, {k for k in wanted if tables[k].rows}, warnings)
    loaded = [t for t in tables.values() if t.rows]
    return _load(scratch_url, loaded, fks, warnings)


def _fit_columns(target: psycopg.Connection, table: _Table) -> bool:
    """Keep the scratch columns the target also has (and their target types); False when the
    table is not on the target."""
    if table.types:
        return True
    found = {name: (tschema, tname) for name, tschema, tname in target.execute(_TARGET_COLUMNS, (table.schema, table.name)).fetchall()}
    if not found:
        return False
    table.columns = [c for c in table.columns if c in found]
    table.types = {c: found[c] for c in table.columns}
    return bool(table.columns)


def _as_text(columns: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)


def _read_sample(target: psycopg.Connection, table: _Table, limit: int, warnings: list[str]) -> None:
    """Up to `limit` rows of `table`: TABLESAMPLE SYSTEM when the catalog estimates more than
    four times that many (a few pages instead of a scan), else the first `limit` rows."""
    try:
        with target.transaction():
            if not _fit_columns(target, table):
                return
            row = target.execute(_TARGET_ROWS, (table.schema, table.name)).fetchone()
            estimate = float(row[0]) if row else 0.0
            sample = sql.SQL("")
            if estimate > 4 * limit:
                sample = sql.SQL("TABLESAMPLE SYSTEM ({})").format(sql.Literal(min(100.0, 400.0 * limit / estimate)))
            query = sql.SQL("SELECT {} FROM {} {} LIMIT {}").format(_as_text(table.columns), table.ident, sample, sql.Literal(limit))
            table.rows = [tuple(r) for r in target.execute(query).fetchall()]
    except psycopg.Error as exc:
        warnings.append(f"sample of {table.label} skipped: {first_line(exc)}")


def _follow_references(target: psycopg.Connection, tables: dict[tuple[str, str], _Table], fks: list[_ForeignKey],
                       changed: set[tuple[str, str]], warnings: list[str]) -> None:
    """Fetch the rows the copied rows reference, level by level (at most 20 levels)."""
    for _level in range(20):
        if not changed:
            return
        grew: set[tuple[str, str]] = set()
        for fk in fks:
            child, parent = tables.get(fk.child), tables.get(fk.parent)
            if fk.child not in changed or child is None or parent is None or not child.rows:
                continue
            if not all(c in child.columns for c in fk.child_columns):
                continue
            try:
                with target.transaction():
                    if not _fit_columns(target, parent) or not all(c in parent.columns for c in fk.parent_columns):
                        continue
                    at = [child.columns.index(c) for c in fk.child_columns]
                    wanted = {tuple(r[i] for i in at) for r in child.rows}
                    wanted = {k for k in wanted if None not in k}
                    have_at = [parent.columns.index(c) for c in fk.parent_columns]
                    missing = sorted(wanted - {tuple(r[i] for i in have_at) for r in parent.rows})
                    if not missing:
                        continue
                    names = [sql.Identifier(f"k{i}") for i in range(len(fk.parent_columns))]
                    keys = sql.SQL(", ").join(
                        sql.SQL("{}::{}").format(n, sql.Identifier(*parent.types[c])) for n, c in zip(names, fk.parent_columns)
                    )
                    query = sql.SQL("SELECT {} FROM {} WHERE ({}) IN (SELECT {} FROM unnest({}) AS u({}))").format(
                        _as_text(parent.columns), parent.ident, sql.SQL(", ").join(sql.Identifier(c) for c in fk.parent_columns),
                        keys, sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in names), sql.SQL(", ").join(names),
                    )
                    columns = [list(col) for col in zip(*missing)]
                    fetched = [tuple(r) for r in target.execute(query, columns).fetchall()]
            except psycopg.Error as exc:
                warnings.append(f"rows of {parent.label} referenced by the sample of {child.label} skipped: {first_line(exc)}")
                continue
            known = set(parent.rows)
            new = [r for r in fetched if r not in known]
            if new:
                parent.rows.extend(new)
                grew.add(fk.parent)
        changed = grew


def _load(scratch_url: str, loaded: list[_Table], fks: list[_ForeignKey], warnings: list[str]) -> dict[str, int]:
    """Copy the sampled rows into the scratch database, referenced tables first, with triggers
    (and so foreign-key checks and the tracking triggers) off when the role may set
    `session_replication_role`. Rows go through a temporary table and INSERT ... ON CONFLICT
    DO NOTHING, so a row the revisions already seeded (a singleton settings row) stays as the
    revisions made it. Then each serial/identity sequence moves past the copied ids. Returns
    the rows copied per table (a table that got none is left out)."""
    order = TopologicalSorter({(t.schema, t.name): set() for t in loaded})
    names = {(t.schema, t.name) for t in loaded}
    for fk in fks:
        if fk.child in names and fk.parent in names and fk.child != fk.parent:
            order.add(fk.child, fk.parent)
    by_key = {(t.schema, t.name): t for t in loaded}
    try:
        ordered = [by_key[k] for k in order.static_order()]
    except CycleError:
        ordered = loaded
    counts: dict[str, int] = {}
    with db.connect(scratch_url, application_name="trackschema-plan") as conn:
        try:
            conn.execute("SET session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            warnings.append("the sample was loaded with triggers on (this role may not set session_replication_role): "
                            "the tracking triggers wrote their rows too")
        for table in ordered:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
                    staging = sql.Identifier("trackschema_plan_sample")
                    cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(staging, table.ident))
                    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, columns)) as copy:
                        for row in table.rows:
                            copy.write_row(row)
                    cur.execute(sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                        table.ident, columns, columns, staging))
                    copied = cur.rowcount
                    for (sequence, column) in cur.execute(
                        "SELECT s.seq, a.attname::text FROM pg_catalog.pg_attribute a, "
                        "LATERAL (SELECT pg_catalog.pg_get_serial_sequence(%s, a.attname) AS seq) s "
                        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND s.seq IS NOT NULL",
                        (table.ident.as_string(conn), table.ident.as_string(conn)),
                    ).fetchall():
                        cur.execute(sql.SQL("SELECT pg_catalog.setval(%s, (SELECT max({}) FROM {}))").format(sql.Identifier(column), table.ident), (sequence,))
                if copied > 0:
                    counts[table.label] = copied
            except psycopg.Error as exc:
                warnings.append(f"sample of {table.label} not loaded: {first_line(exc)}")
    return counts


def target_sizes(settings: Settings) -> dict[tuple[str, str], int | None]:
    """Bytes of every relation on the target: relpages x block size, from the catalog only (as
    of the last VACUUM/ANALYZE; None for a relation never vacuumed or analyzed since it was
    made); a partitioned table or index counts its partitions."""
    query = """
    WITH RECURSIVE rel AS (
        SELECT c.oid, n.nspname, c.relname
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'),
    tree(top, oid) AS (
        SELECT oid, oid FROM rel
        UNION ALL
        SELECT tree.top, i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
    SELECT rel.nspname, rel.relname, sum(c.relpages::bigint) * current_setting('block_size')::bigint,
           coalesce(bool_and(c.reltuples < 0 AND c.relpages = 0) FILTER (WHERE c.relkind NOT IN ('p', 'I')), false)
      FROM rel JOIN tree ON tree.top = rel.oid JOIN pg_catalog.pg_class c ON c.oid = tree.oid
     GROUP BY rel.nspname, rel.relname
    """
    with db.connect(settings.require_url(), application_name="trackschema-plan") as conn:
        conn.execute("SET default_transaction_read_only = on")
        return {(schema, name): None if unknown else int(size) for schema, name, size, unknown in conn.execute(query).fetchall()}

