"""Apply or undo a Citus layout (`layout.Placement` entries) inside a revision.

`upgrade_sql(layout)` and `downgrade_sql(layout)` return ONE `DO` block each, which the
revision runs with `op.execute` in its own transaction, online and in `--sql` alike:

* On plain PostgreSQL (no `citus` row in pg_extension) the block raises one NOTICE (`not a
  Citus database (extension citus not installed): nothing to distribute`) and changes
  nothing. The downgrade likewise, and also when nothing of the layout is distributed.
* On Citus it first asks every active worker for `SELECT 1` (`run_command_on_workers`):
  a worker that does not answer stops the revision with one line naming it
  (`Citus worker 127.0.0.1:5433 does not answer: ...`) before anything changed.
* Then, for each entry (`apply_entry`): the tracking statement triggers are dropped, the
  keys reshaped (`Key.after`, which includes the distribution column), the table made a
  reference table or distributed (`create_distributed_table(table, column, colocate_with
  => its group's first table, or 'none')`; partitions follow their parent), and, once
  every entry is placed, the foreign keys dropped at the start are added back (but the
  entries' `dropped_foreign_keys`) and row tracking installed (install_entity_tracking_rows).
  Foreign keys are dropped first so that making a reference table does not turn the
  tables referencing it into Citus-managed local tables (Citus does that for a local table
  with a foreign key to a reference table, and distributing such a table later re-creates
  it, dropping the materialized views that depend on it).
* Everything is one transaction with `citus.multi_shard_modify_mode = sequential` (Citus
  requires it to create distributed tables that have foreign keys to reference tables in a
  transaction block) and `citus.enable_unsafe_triggers = on` (SET LOCAL; see
  docs/citus.md#triggers for why it is safe here and how the database keeps it): any failure,
  a worker lost midway included, rolls back the metadata and every shard (Citus's two-phase
  commit), so nothing is left half-distributed.

The downgrade (`undo_entry` in reverse order) drops the row triggers, the foreign keys and
the materialized views (kept: definition, indexes, comment, grants, populated or not; Citus
re-creates an undistributed table, and `DROP ... CASCADE` would take them), runs
`undistribute_table` (reference tables too: they become local tables again; rows are
copied back to the coordinator), restores the keys and every foreign key, re-creates the
materialized views and brings back the statement tracking triggers (install_entity_tracking
v2, from trackschema.entity_tracking).

The sequence entity_tracking_id_seq, used by the tracking functions, exists on the
coordinator only: the upgrade creates it on each worker (`run_command_on_workers`), in that
worker's own range of the 60 bits (group id << 52), so ids made on different nodes never
collide. It is outside the transaction (Citus does not propagate a sequence that is no
column's default), idempotent (IF NOT EXISTS), and harmless when the rest rolls back;
`worker_setup_sql()` does it again on a worker added later (docs/citus.md#adding-a-worker).
"""

from __future__ import annotations

from psycopg import sql

from trackschema.citus.layout import Placement
from trackschema.migrations.ops import read_sql

TRACKING_TRIGGERS = ("track_insert", "track_update", "track_delete")
SEQUENCE = "public.entity_tracking_id_seq"

# Materialized views of public and trackschema: kept aside into v_views (definition, indexes,
# comment, owner, grants, populated or not), then dropped; `FOREACH v_sql IN ARRAY v_views`
# re-creates them (undistribute_table re-creates a table, and its DROP would take them).
KEEP_VIEWS = """SELECT coalesce(array_agg(s ORDER BY o, n), '{}') INTO v_views FROM (
        SELECT m.oid AS o, 0 AS n, format('CREATE MATERIALIZED VIEW %s AS %s WITH %s DATA', m.oid::regclass,
                                          rtrim(pg_get_viewdef(m.oid), ';'), CASE WHEN m.relispopulated THEN '' ELSE 'NO' END) AS s
          FROM pg_class m WHERE m.relkind = 'm' AND m.relnamespace IN ('public'::regnamespace, 'trackschema'::regnamespace)
        UNION ALL
        SELECT i.indrelid, 1, pg_get_indexdef(i.indexrelid) || ';'
          FROM pg_index i JOIN pg_class m ON m.oid = i.indrelid
         WHERE m.relkind = 'm' AND m.relnamespace IN ('public'::regnamespace, 'trackschema'::regnamespace)
        UNION ALL
        SELECT m.oid, 2, format('COMMENT ON MATERIALIZED VIEW %s IS %L', m.oid::regclass, obj_description(m.oid, 'pg_class'))
          FROM pg_class m WHERE m.relkind = 'm' AND m.relnamespace IN ('public'::regnamespace, 'trackschema'::regnamespace)
           AND obj_description(m.oid, 'pg_class') IS NOT NULL
        UNION ALL
        SELECT m.oid, 3, format('ALTER MATERIALIZED VIEW %s OWNER TO %I', m.oid::regclass, pg_get_userbyid(m.relowner))
          FROM pg_class m WHERE m.relkind = 'm' AND m.relnamespace IN ('public'::regnamespace, 'trackschema'::regnamespace)
        UNION ALL
        SELECT m.oid, 4, format('GRANT %s ON %s TO %s', a.privilege_type, m.oid::regclass,
                                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
          FROM pg_class m, aclexplode(m.relacl) a
         WHERE m.relkind = 'm' AND m.relnamespace IN ('public'::regnamespace, 'trackschema'::regnamespace) AND a.grantee <> m.relowner
        ) AS x;"""
DROP_VIEWS = """FOR v_sql IN SELECT format('DROP MATERIALIZED VIEW %s', m.oid::regclass) FROM pg_class m
                  WHERE m.relkind = 'm' AND m.relnamespace IN ('public'::regnamespace, 'trackschema'::regnamespace)
                  ORDER BY m.oid DESC LOOP
        EXECUTE v_sql;
    END LOOP;"""


def _s(composed: sql.Composable) -> str:
    return composed.as_string(None)


def _table(name: str) -> sql.Composable:
    schema, table = name.split(".", 1)
    return sql.Identifier(schema, table)


def _cols(columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c) for c in columns)


def _notice_unless_citus(label: str) -> str:
    message = f"{label}: not a Citus database (extension citus not installed): nothing to distribute"
    return _s(sql.SQL("""    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RAISE NOTICE '%', {};
        RETURN;
    END IF;
""").format(sql.Literal(message)))


def _workers_answer(label: str) -> str:
    return _s(sql.SQL("""    -- every active worker answers, or nothing changes (one line naming the node)
    FOR v_node IN SELECT w.nodename, w.nodeport, w.result FROM run_command_on_workers('SELECT 1') AS w WHERE NOT w.success LOOP
        RAISE EXCEPTION '%: Citus worker %:% does not answer (%): nothing was changed', {},
              v_node.nodename, v_node.nodeport, split_part(v_node.result, E'\\n', 1);
    END LOOP;
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
""").format(sql.Literal(label)))


def _tables_array(layout: tuple[Placement, ...]) -> sql.Composable:
    placed = [p for p in layout if p.kind != "local"]
    return sql.SQL("ARRAY[{}]::regclass[]").format(sql.SQL(", ").join(sql.Literal(p.table) for p in placed))


def worker_setup_sql() -> str:
    """The statement that creates entity_tracking_id_seq on every worker that lacks it, each
    in its own range (run by the upgrade; again after `citus_add_node`)."""
    command = ("DO $w$ DECLARE g int := (SELECT groupid FROM pg_dist_local_group); BEGIN "
               "IF to_regclass('public.entity_tracking_id_seq') IS NULL THEN "
               "EXECUTE format('CREATE SEQUENCE public.entity_tracking_id_seq AS bigint MINVALUE %s MAXVALUE %s START %s', "
               "(g::int8 << 52) + 1, ((g::int8 + 1) << 52) - 1, (g::int8 << 52) + 1); END IF; END $w$")
    return _s(sql.SQL("PERFORM run_command_on_workers({})").format(sql.Literal(command)))


def apply_entry(placement: Placement) -> list[str]:
    """Statements (PL/pgSQL) that place one entry: tracking statement triggers dropped, keys
    reshaped, the table distributed or made a reference table. Foreign keys are the
    caller's (dropped before the first entry, added back after the last)."""
    table = _table(placement.table)
    out: list[str] = []
    if placement.kind == "local":
        return out
    if placement.tracking:
        out += [_s(sql.SQL("DROP TRIGGER IF EXISTS {} ON {};").format(sql.Identifier(t), table)) for t in TRACKING_TRIGGERS]
    for key in placement.keys:
        out.append(_s(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {};").format(table, sql.Identifier(key.name))))
        out.append(_s(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} ({});").format(
            table, sql.Identifier(key.name), sql.SQL(key.kind), _cols(key.after))))
    if placement.kind == "reference":
        out.append(_s(sql.SQL("PERFORM create_reference_table({});").format(sql.Literal(placement.table))))
    else:
        out.append(_s(sql.SQL("PERFORM create_distributed_table({}, {}, colocate_with => {});").format(
            sql.Literal(placement.table), sql.Literal(placement.column),
            sql.Literal(placement.colocate_with or "none"))))
    return out


def undo_entry(placement: Placement) -> list[str]:
    """Statements that undo `apply_entry` for one entry (the caller drops the foreign keys
    and the row triggers first, and restores the tracking afterwards)."""
    table = _table(placement.table)
    if placement.kind == "local":
        return []
    out = [_s(sql.SQL("IF EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = {}::regclass) THEN "
                      "PERFORM undistribute_table({}); END IF;").format(sql.Literal(placement.table), sql.Literal(placement.table)))]
    for key in placement.keys:
        out.append(_s(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {};").format(table, sql.Identifier(key.name))))
        out.append(_s(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} ({});").format(
            table, sql.Identifier(key.name), sql.SQL(key.kind), _cols(key.before))))
    return out


def _block(body: list[str], declare: str = "") -> str:
    lines = "\n".join(f"    {line}" if not line.startswith("    ") else line for line in body)
    return f"DO $citus$\nDECLARE\n    v_node record;\n    v_sql text;\n    v_fks text[];{declare}\nBEGIN\n{lines}\nEND\n$citus$"


def upgrade_sql(layout: tuple[Placement, ...], label: str, *, rows_function_file: str) -> str:
    """The upgrade's DO block (module docstring); `rows_function_file` is the revision's SQL
    file of install_entity_tracking_rows."""
    dropped = [fk.name for p in layout for fk in p.dropped_foreign_keys]
    tables = _tables_array(layout)
    body = [_notice_unless_citus(label), _workers_answer(label), worker_setup_sql() + ";",
            "-- foreign keys from or to the tables placed: dropped now, added back at the end",
            _s(sql.SQL("""SELECT coalesce(array_agg(format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
                                    pg_get_constraintdef(c.oid)) ORDER BY c.conrelid::regclass::text, c.conname)
                              FILTER (WHERE NOT c.conname = ANY ({dropped})), '{{}}')
      INTO v_fks
      FROM pg_constraint c
     WHERE c.contype = 'f' AND (c.conrelid = ANY ({tables}) OR c.confrelid = ANY ({tables}));""").format(
                dropped=sql.SQL("ARRAY[{}]::name[]").format(sql.SQL(", ").join(sql.Literal(n) for n in dropped)), tables=tables)),
            _s(sql.SQL("""FOR v_sql IN SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname)
                   FROM pg_constraint c
                  WHERE c.contype = 'f' AND (c.conrelid = ANY ({tables}) OR c.confrelid = ANY ({tables})) LOOP
        EXECUTE v_sql;
    END LOOP;""").format(tables=tables))]
    for placement in layout:
        statements = apply_entry(placement)
        if statements:
            body.append(f"-- {placement.table}: {placement.kind}" + (f" by {placement.column}" if placement.column else ""))
            body += statements
    body += ["FOREACH v_sql IN ARRAY v_fks LOOP", "    EXECUTE v_sql;", "END LOOP;",
             "-- row-level tracking (the statement triggers' transition tables do not work on shards)",
             _s(sql.SQL("EXECUTE {};").format(sql.Literal(read_sql(rows_function_file))))]
    for placement in layout:
        if placement.tracking:
            body.append(_s(sql.SQL(
                "PERFORM install_entity_tracking_rows({}::regclass, {}, (SELECT t.ignored_columns::name[] FROM trackschema.entity_tracking t "
                "WHERE t.table_name = {}));").format(sql.Literal(placement.table), sql.Literal(placement.tracking),
                                                     sql.Literal(placement.table))))
    return _block(body)


def downgrade_sql(layout: tuple[Placement, ...], label: str) -> str:
    """The downgrade's DO block (module docstring)."""
    tables = _tables_array(layout)
    placed = [p for p in layout if p.kind != "local"]
    first = placed[0].table
    body = [_notice_unless_citus(label),
            _s(sql.SQL("""IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass({})) THEN
        RAISE NOTICE '%', {};
        RETURN;
    END IF;""").format(sql.Literal(first), sql.Literal(f"{label}: nothing of the layout is distributed: nothing to undo"))),
            _workers_answer(label)]
    for placement in reversed(placed):
        if placement.tracking:
            body += [_s(sql.SQL("DROP TRIGGER IF EXISTS {} ON {};").format(sql.Identifier(t), _table(placement.table)))
                     for t in TRACKING_TRIGGERS]
            schema, name = placement.table.split(".", 1)
            body.append(_s(sql.SQL("DROP FUNCTION IF EXISTS {}();").format(sql.Identifier(schema, f"track_{name}_row"))))
    readd = [f"ALTER TABLE {p.table} ADD CONSTRAINT {fk.name} {fk.definition}" for p in layout for fk in p.dropped_foreign_keys]
    body += [
        "-- foreign keys: dropped now, added back (with the ones Citus could not keep) at the end",
        _s(sql.SQL("""SELECT coalesce(array_agg(format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
                                    pg_get_constraintdef(c.oid)) ORDER BY c.conrelid::regclass::text, c.conname), '{{}}') || {readd}
      INTO v_fks
      FROM pg_constraint c
     WHERE c.contype = 'f' AND (c.conrelid = ANY ({tables}) OR c.confrelid = ANY ({tables}));""").format(
            readd=sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(s) for s in readd)), tables=tables)),
        _s(sql.SQL("""FOR v_sql IN SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname)
                   FROM pg_constraint c
                  WHERE c.contype = 'f' AND (c.conrelid = ANY ({tables}) OR c.confrelid = ANY ({tables})) LOOP
        EXECUTE v_sql;
    END LOOP;""").format(tables=tables)),
        "-- materialized views: undistribute_table re-creates the table and would drop them; kept and re-created",
        KEEP_VIEWS,
        DROP_VIEWS,
    ]
    for placement in reversed(placed):
        body.append(f"-- {placement.table}: back to a local table")
        body += undo_entry(placement)
    body += ["FOREACH v_sql IN ARRAY v_fks LOOP", "    EXECUTE v_sql;", "END LOOP;",
             "FOREACH v_sql IN ARRAY v_views LOOP", "    EXECUTE v_sql;", "END LOOP;",
             "-- the statement tracking triggers of install_entity_tracking v2"]
    for placement in placed:
        if placement.tracking:
            body.append(_s(sql.SQL(
                "PERFORM install_entity_tracking({}::regclass, {}, (SELECT t.ignored_columns::name[] FROM trackschema.entity_tracking t "
                "WHERE t.table_name = {}));").format(sql.Literal(placement.table), sql.Literal(placement.tracking),
                                                     sql.Literal(placement.table))))
    body += ["DROP FUNCTION IF EXISTS install_entity_tracking_rows(regclass, name, name[]);",
             "PERFORM run_command_on_workers('DROP SEQUENCE IF EXISTS public.entity_tracking_id_seq');"]
    return _block(body, declare="\n    v_views text[];")
