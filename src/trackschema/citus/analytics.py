"""Revision 0101_citus_analytics's two DO blocks: the analytics tables onto Citus and back.

`upgrade_sql()` (one transaction, like 0100's; on plain PostgreSQL one NOTICE and nothing else):

1. every active worker answers (`distribute._workers_answer`), or nothing changes;
2. a raw row without a `user_code` stops the revision with one line naming the table, how
   many rows and the first keys (a NULL cannot be a distribution value; the ingest refuses
   such events, so only rows written around it can have one): fix or delete them first;
3. the reader policies lose their subqueries (Citus refuses them on distributed and
   reference tables): `analytics_reader_own` becomes `analytics_may_read(user_code)` on the
   raw and roll-up tables, `analytics_role_usable(role_name)` on the ownership table (same
   rule, same roles: `ALTER POLICY` keeps them); both functions are distributed
   (`create_distributed_function`) so every node has them;
4. the statement triggers of the raw tables are dropped (mark-days of 0011, session
   counters of 0012: transition tables do not work on shards, and the markers are a
   coordinator table); `analytics_ingest_land` v2 and `analytics_ingest` v3 do their work;
   the dashboard functions v2 (coverage read on the coordinator) and
   `analytics_purge_raw_batch` v2 (victims by key, not ctid) are installed too;
5. foreign keys from or to the tables placed are dropped, each entry of `LAYOUT_0101`
   applied (`distribute.apply_entry`: keys with `user_code`, reference or distributed), the
   foreign keys added back, the session ones as `(user_code, session_id)`.

`downgrade_sql()` undoes it in reverse: the functions of 0100's time back (land v1, ingest
v2, dashboards v1, purge v1), the materialized views kept aside (`analytics_dashboard` reads the raw tables, and
`undistribute_table` re-creates them), `distribute.undo_entry` per entry, `user_code`
nullable again on the raw tables, the foreign keys, views, triggers and 0013's policies back,
the two policy functions dropped. Rows are kept both ways.
"""

from __future__ import annotations

from psycopg import sql

from trackschema.citus import distribute
from trackschema.citus.distribute import (
    _block,
    _notice_unless_citus,
    _s,
    _table,
    _tables_array,
    _workers_answer,
)
from trackschema.citus.layout_0101 import (
    FOREIGN_KEYS_0101,
    LAYOUT_0101,
    RAW_TABLES,
    ROLLUP_TABLES,
    SESSIONS,
)
from trackschema.migrations.ops import read_sql

# The SQL files are named by the revision (alembic/versions/0101_citus_analytics.py), which
# installs them: its policy functions (file, signature), the functions installed on Citus by
# the upgrade (CREATE OR REPLACE: owners and grants kept), and the versions of 0100's time
# that the downgrade puts back (CREATE FUNCTION files made OR REPLACE).
Files = tuple[str, ...]
Signed = tuple[tuple[str, str], ...]

# The statement triggers of 0011 (mark days) and 0012 (session counters), as pg_get_triggerdef has them.
TRIGGERS: tuple[tuple[str, str, str], ...] = tuple(
    (f"public.{table}", f"{table}_{name}",
     (f"CREATE TRIGGER {table}_{name} AFTER {event} ON public.{table} REFERENCING {refs} "
     f"FOR EACH STATEMENT EXECUTE FUNCTION trackschema.{function}()"))
    for table in ("analytics_clicks", "analytics_page_views", "analytics_sessions")
    for name, event, refs, function in (
        ("count_sessions", "INSERT", "NEW TABLE AS new_rows", "analytics_count_session_events"),
        ("mark_days_ins", "INSERT", "NEW TABLE AS new_rows", f"{table}_mark_days"),
        ("mark_days_upd", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", f"{table}_mark_days"))
    if not (table == "analytics_sessions" and name == "count_sessions"))

READER_POLICY = "analytics_reader_own"
POLICY_0013 = "(user_code = ANY ((SELECT analytics_owned_user_codes())::text[]))"
OWNERS_POLICY_0013 = ("(EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = analytics_user_code_owners.role_name "
                      "AND pg_catalog.pg_has_role(r.oid, 'USAGE')))")
POLICY_0101 = "(analytics_may_read(user_code))"
OWNERS_POLICY_0101 = "(analytics_role_usable(role_name))"


def _policies(raw_and_rollups: str, owners: str) -> list[str]:
    out = [_s(sql.SQL("ALTER POLICY {} ON {} USING {};").format(sql.Identifier(READER_POLICY), _table(t), sql.SQL(raw_and_rollups)))
           for t in RAW_TABLES + ROLLUP_TABLES]
    out.append(_s(sql.SQL("ALTER POLICY {} ON public.analytics_user_code_owners USING {};").format(
        sql.Identifier(READER_POLICY), sql.SQL(owners))))
    return out


def _or_replace(text: str) -> str:
    return text if "CREATE OR REPLACE FUNCTION" in text else text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _execute_files(files: tuple[str, ...], *, or_replace: bool = False) -> list[str]:
    return [_s(sql.SQL("EXECUTE {};").format(sql.Literal(_or_replace(read_sql(f)) if or_replace else read_sql(f)))) for f in files]


def _foreign_keys(tables: sql.Composable, reshaped_defs: str) -> list[str]:
    """Collect every foreign key from or to the placed tables into v_fks (re-add statements;
    the reshaped ones with the definition of `reshaped_defs`: 'before' or 'after'), then drop
    them all."""
    names = sql.SQL("ARRAY[{}]::name[]").format(sql.SQL(", ").join(sql.Literal(fk.name) for fk in FOREIGN_KEYS_0101))
    readd = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(
        sql.Literal(f"ALTER TABLE {fk.table} ADD CONSTRAINT {fk.name} {getattr(fk, reshaped_defs)}") for fk in FOREIGN_KEYS_0101))
    return [
        _s(sql.SQL("""SELECT coalesce(array_agg(format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
                                    pg_get_constraintdef(c.oid)) ORDER BY c.conrelid::regclass::text, c.conname)
                              FILTER (WHERE NOT c.conname = ANY ({names})), '{{}}') || {readd}
      INTO v_fks
      FROM pg_constraint c
     WHERE c.contype = 'f' AND (c.conrelid = ANY ({tables}) OR c.confrelid = ANY ({tables}));""").format(
            names=names, readd=readd, tables=tables)),
        _s(sql.SQL("""FOR v_sql IN SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname)
                   FROM pg_constraint c
                  WHERE c.contype = 'f' AND (c.conrelid = ANY ({tables}) OR c.confrelid = ANY ({tables})) LOOP
        EXECUTE v_sql;
    END LOOP;""").format(tables=tables)),
    ]


def _views_on(tables: sql.Composable) -> list[str]:
    """distribute.KEEP_VIEWS and DROP_VIEWS for the materialized views that read the placed
    tables only (analytics_dashboard): the others may read 0100's distributed tables, and
    re-creating those WITH DATA can fail on Citus (contact_management_view's joins)."""
    namespaces = "m.relnamespace IN ('public'::regnamespace, 'trackschema'::regnamespace)"
    reads = _s(sql.SQL("m.oid IN (SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass "
                       "AND d.objid = r.oid WHERE d.refobjid = ANY ({}))").format(tables))
    keep, drop = (v.replace(namespaces, f"{namespaces} AND {reads}") for v in (distribute.KEEP_VIEWS, distribute.DROP_VIEWS))
    assert keep.count(reads) == 5 and drop.count(reads) == 1
    return [keep, drop]


def _refuse_null_user_codes(label: str) -> list[str]:
    out = []
    for table in RAW_TABLES:
        key = "session_id" if table == SESSIONS else "id::text"
        out.append(_s(sql.SQL("""SELECT count(*) INTO v_count FROM {table} WHERE user_code IS NULL;
    IF v_count > 0 THEN
        SELECT string_agg(x.k, ', ') INTO v_keys FROM (SELECT {key} AS k FROM {table} WHERE user_code IS NULL ORDER BY 1 LIMIT 5) AS x;
        RAISE EXCEPTION '%: % has % rows without a user_code (the distribution column; first: %): nothing was changed',
              {label}, {name}, v_count, v_keys
              USING HINT = 'set their user_code or delete them, then upgrade again (docs/citus.md#analytics)';
    END IF;""").format(key=sql.SQL(key), table=_table(table), label=sql.Literal(label), name=sql.Literal(table))))
    return out


def upgrade_sql(label: str, *, policy_functions: Signed, citus_functions: Files) -> str:
    """The upgrade's DO block (module docstring)."""
    tables = _tables_array(LAYOUT_0101)
    body = [_notice_unless_citus(label), _workers_answer(label),
            "-- a NULL user_code cannot be a distribution value: refused, naming the rows",
            *_refuse_null_user_codes(label),
            "-- the reader policies without subqueries, through functions on every node",
            *_execute_files(tuple(f for f, _ in policy_functions)),
            *[_s(sql.SQL("PERFORM create_distributed_function({});").format(sql.Literal(sig))) for _, sig in policy_functions],
            *_policies(POLICY_0101, OWNERS_POLICY_0101),
            "-- the statement triggers of the raw tables: the Citus ingest functions do their work",
            *[_s(sql.SQL("DROP TRIGGER {} ON {};").format(sql.Identifier(name), _table(table))) for table, name, _ in TRIGGERS],
            "-- foreign keys from or to the tables placed: dropped now, added back at the end (sessions' with user_code)",
            *_foreign_keys(tables, "after")]
    for placement in LAYOUT_0101:
        body.append(f"-- {placement.table}: {placement.kind}" + (f" by {placement.column}" if placement.column else ""))
        body += distribute.apply_entry(placement)
    body += ["FOREACH v_sql IN ARRAY v_fks LOOP", "    EXECUTE v_sql;", "END LOOP;",
             "-- the ingest functions of the distributed tables",
             *_execute_files(citus_functions)]
    return _block(body, declare="\n    v_count bigint;\n    v_keys text;")


def downgrade_sql(label: str, *, policy_functions: Signed, plain_functions: Files) -> str:
    """The downgrade's DO block (module docstring)."""
    tables = _tables_array(LAYOUT_0101)
    body = [_notice_unless_citus(label),
            _s(sql.SQL("""IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass({})) THEN
        RAISE NOTICE '%', {};
        RETURN;
    END IF;""").format(sql.Literal(SESSIONS), sql.Literal(f"{label}: the analytics tables are not distributed: nothing to undo"))),
            _workers_answer(label),
            "-- the ingest functions of 0100's time",
            *_execute_files(plain_functions, or_replace=True),
            "-- foreign keys: dropped now, added back (sessions' without user_code) at the end",
            *_foreign_keys(tables, "before"),
            "-- materialized views: undistribute_table re-creates the table and would drop them; kept and re-created",
            *_views_on(tables),
            "-- comments: undistribute_table of a reference table loses its table's (measured: analytics_user_code_owners)",
            _s(sql.SQL("""SELECT coalesce(array_agg(format('COMMENT ON %s %s IS %L', CASE WHEN d.objsubid = 0 THEN 'TABLE' ELSE 'COLUMN' END,
                                    CASE WHEN d.objsubid = 0 THEN d.objoid::regclass::text
                                         ELSE format('%s.%I', d.objoid::regclass, a.attname) END, d.description)), '{{}}')
      INTO v_comments
      FROM pg_description d LEFT JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
     WHERE d.classoid = 'pg_class'::regclass AND d.objoid = ANY ({tables});""").format(tables=tables))]
    for placement in reversed(LAYOUT_0101):
        body.append(f"-- {placement.table}: back to a local table")
        body += distribute.undo_entry(placement)
    body += [_s(sql.SQL("ALTER TABLE {} ALTER COLUMN user_code DROP NOT NULL;").format(_table(t))) for t in RAW_TABLES]
    body += ["FOREACH v_sql IN ARRAY v_fks LOOP", "    EXECUTE v_sql;", "END LOOP;",
             "FOREACH v_sql IN ARRAY v_views LOOP", "    EXECUTE v_sql;", "END LOOP;",
             "FOREACH v_sql IN ARRAY v_comments LOOP", "    EXECUTE v_sql;", "END LOOP;",
             "-- the statement triggers of 0011 and 0012",
             *[f"{definition};" for _, _, definition in TRIGGERS],
             "-- the policies of 0013",
             *_policies(POLICY_0013, OWNERS_POLICY_0013),
             *[_s(sql.SQL("DROP FUNCTION {};").format(sql.SQL(sig))) for _, sig in reversed(policy_functions)]]
    return _block(body, declare="\n    v_views text[];\n    v_comments text[];")
