"""Analytics: the raw tables' session references checked once per statement, not per row.

On plain PostgreSQL the foreign keys `analytics_page_views_session_id_fkey` and
`analytics_clicks_session_id_fkey` (`session_id` → `analytics_sessions(session_id)` ON DELETE
CASCADE) are replaced by triggers with the same semantics (docs/design.md#ingest):

- page views, clicks, AFTER INSERT, per statement (transition table): every distinct session
  referenced is locked once FOR KEY SHARE in session_id COLLATE "C" order (the order of the
  ingest's upsert, the counter trigger and the purge); a missing one raises
  foreign_key_violation (23503) naming the table, the first missing session_id and the count.
  AFTER UPDATE OF session_id, per row when the key changed: the same for the new key (a
  transition table cannot go with a column list);
- sessions, AFTER DELETE, per statement: their page views and clicks deleted (the CASCADE);
  AFTER UPDATE OF session_id, per row when the key changed: refused while a page view or
  click still references an old key no session has (NO ACTION); AFTER TRUNCATE: refused
  unless the page views and clicks are empty once the statement is done (truncate them in
  the same statement).

The FK's check was an index probe, a FOR KEY SHARE lock and an SPI call for every row
landed: the largest cost of the ingest floor that is not the rows themselves.

SQL files it installs (trigger functions, schema trackschema, SECURITY DEFINER):
triggers/analytics_session_refs_check.v1.sql, triggers/analytics_sessions_delete_children.v1.sql,
triggers/analytics_sessions_key_in_use.v1.sql, triggers/analytics_sessions_truncate_check.v1.sql.

On Citus (extension citus installed) upgrade and downgrade are one NOTICE each: statement
triggers with transition tables do not run on shards, and 0101's foreign keys
`(user_code, session_id)` stay.

Downgrade: the foreign keys back exactly as at 0101, added NOT VALID then validated; a page
view or click whose session is missing stops it first with one line naming the table, the
count and the first session_id, and nothing is changed. Such an orphan can only come from
writes that bypassed the triggers (session_replication_role = replica, or the triggers
disabled): the triggers are dropped only after the keys validate.

Locks: upgrade, ACCESS EXCLUSIVE on the three tables for the DROP CONSTRAINTs and SHARE ROW
EXCLUSIVE for the CREATE TRIGGERs (catalog only, no scan); downgrade, SHARE ROW EXCLUSIVE on
the three tables while the foreign keys validate (a scan of the page views and clicks).

Revision ID: 0102_analytics_session_check
Revises: 0101_citus_analytics
Create Date: 2026-12-07
"""

from __future__ import annotations

from psycopg import sql

from alembic import op
from trackschema.migration_ops import read_sql

revision: str = "0102_analytics_session_check"
down_revision: str | None = "0101_citus_analytics"
branch_labels = None
depends_on = None

# The trigger functions (file, signature) this revision installs on plain PostgreSQL.
FUNCTIONS = (
    ("triggers/analytics_session_refs_check.v1.sql", "trackschema.analytics_session_refs_check()"),
    ("triggers/analytics_sessions_delete_children.v1.sql", "trackschema.analytics_sessions_delete_children()"),
    ("triggers/analytics_sessions_key_in_use.v1.sql", "trackschema.analytics_sessions_key_in_use()"),
    ("triggers/analytics_sessions_truncate_check.v1.sql", "trackschema.analytics_sessions_truncate_check()"),
)
CHILDREN = ("analytics_page_views", "analytics_clicks")

# (table, trigger name, CREATE TRIGGER statement)
CHECK_INSERT = ("AFTER INSERT ON {} REFERENCING NEW TABLE AS new_rows "
                "FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_session_refs_check()")
CHECK_UPDATE = ("AFTER UPDATE OF session_id ON {} FOR EACH ROW WHEN (OLD.session_id IS DISTINCT FROM NEW.session_id) "
                "EXECUTE FUNCTION trackschema.analytics_session_refs_check()")
SESSION_TRIGGERS = (
    ("analytics_sessions_delete_children",
     ("AFTER DELETE ON analytics_sessions REFERENCING OLD TABLE AS old_rows "
      "FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_sessions_delete_children()")),
    ("analytics_sessions_key_in_use",
     ("AFTER UPDATE OF session_id ON analytics_sessions FOR EACH ROW WHEN (OLD.session_id IS DISTINCT FROM NEW.session_id) "
      "EXECUTE FUNCTION trackschema.analytics_sessions_key_in_use()")),
    ("analytics_sessions_truncate_check",
     "AFTER TRUNCATE ON analytics_sessions FOR EACH STATEMENT EXECUTE FUNCTION trackschema.analytics_sessions_truncate_check()"),
)
TRIGGERS = (
    *((child, f"{child}_check_session_ins", f"CREATE TRIGGER {child}_check_session_ins {CHECK_INSERT.format(child)}")
      for child in CHILDREN),
    *((child, f"{child}_check_session_upd", f"CREATE TRIGGER {child}_check_session_upd {CHECK_UPDATE.format(child)}")
      for child in CHILDREN),
    *(("analytics_sessions", name, f"CREATE TRIGGER {name} {spec}") for name, spec in SESSION_TRIGGERS),
)

# The foreign keys as revision 0001 made them and 0101 left them on plain PostgreSQL.
FOREIGN_KEYS = tuple(
    (child, f"{child}_session_id_fkey",
     "FOREIGN KEY (session_id) REFERENCES analytics_sessions(session_id) ON DELETE CASCADE")
    for child in CHILDREN)

# What enforces each reference now, for the tools that follow foreign keys (plan's sample
# brings a page view's session along; docs/design.md#ingest).
REFERENCES = """CREATE TABLE trackschema.trigger_references (
        table_name         text NOT NULL,
        columns            text[] NOT NULL,
        referenced_table   text NOT NULL,
        referenced_columns text[] NOT NULL,
        enforced_by        text NOT NULL,
        PRIMARY KEY (table_name, columns)
    );
    COMMENT ON TABLE trackschema.trigger_references IS 'references that triggers enforce instead of foreign keys (revision 0102): tools that follow foreign keys read these too';
    INSERT INTO trackschema.trigger_references VALUES
        ('public.analytics_page_views', '{session_id}', 'public.analytics_sessions', '{session_id}', 'trackschema.analytics_session_refs_check() and the analytics_sessions triggers of revision 0102'),
        ('public.analytics_clicks', '{session_id}', 'public.analytics_sessions', '{session_id}', 'trackschema.analytics_session_refs_check() and the analytics_sessions triggers of revision 0102');"""

NOT_CITUS = """    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RAISE NOTICE '%', {message};
        RETURN;
    END IF;
"""


def _s(composable: sql.Composable) -> str:
    return composable.as_string(None)


def _do(label: str, body: list[str]) -> str:
    message = sql.Literal(f"{label}: a Citus database: the session foreign keys of 0101 stay, nothing to change")
    head = _s(sql.SQL(NOT_CITUS).format(message=message))
    return "DO $rev0102$\nDECLARE\n    v_count bigint;\n    v_first text;\nBEGIN\n" + head + "\n".join(
        "    " + line for line in body) + "\nEND\n$rev0102$"


def upgrade_sql() -> str:
    """The upgrade's DO block: functions, triggers, then the foreign keys dropped."""
    body = [_s(sql.SQL("EXECUTE {};").format(sql.Literal(read_sql(path)))) for path, _ in FUNCTIONS]
    body += [_s(sql.SQL("EXECUTE {};").format(sql.Literal(create))) for _, _, create in TRIGGERS]
    body += [_s(sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {};").format(sql.Identifier(child), sql.Identifier(name)))
             for child, name, _ in FOREIGN_KEYS]
    body.append(REFERENCES)
    return _do(revision, body)


def downgrade_sql() -> str:
    """The downgrade's DO block: the foreign keys added NOT VALID (which also locks out
    writers), orphans refused with one line, the keys validated, then the triggers dropped."""
    body = [_s(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID;").format(
        sql.Identifier(child), sql.Identifier(name), sql.SQL(definition))) for child, name, definition in FOREIGN_KEYS]
    for child, _, _ in FOREIGN_KEYS:
        body.append(_s(sql.SQL("""SELECT count(*), min(o.session_id COLLATE "C") INTO v_count, v_first
      FROM {child} AS o WHERE NOT EXISTS (SELECT 1 FROM analytics_sessions AS s WHERE s.session_id = o.session_id);
    IF v_count > 0 THEN
        RAISE EXCEPTION '%: % has % rows whose session is missing (first session_id: %): nothing was changed', {label}, {table}, v_count, v_first
              USING ERRCODE = 'foreign_key_violation',
                    HINT = 'only writes that bypassed the triggers (session_replication_role = replica, disabled triggers) leave these: delete them or add their sessions, then downgrade again';
    END IF;""").format(child=sql.Identifier(child), label=sql.Literal(revision), table=sql.Literal(child))))
    body += [_s(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {};").format(sql.Identifier(child), sql.Identifier(name)))
             for child, name, _ in FOREIGN_KEYS]
    body += [_s(sql.SQL("DROP TRIGGER {} ON {};").format(sql.Identifier(name), sql.Identifier(table)))
             for table, name, _ in reversed(TRIGGERS)]
    body += [f"DROP FUNCTION {signature};" for _, signature in reversed(FUNCTIONS)]
    body.append("DROP TABLE trackschema.trigger_references;")
    return _do(revision, body)


def upgrade() -> None:
    op.execute(upgrade_sql())


def downgrade() -> None:
    op.execute(downgrade_sql())
