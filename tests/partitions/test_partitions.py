"""Online monthly partitioning (revision 0030) and `trackschema partitions`, on real data.

Conversion runs against populated tables while other sessions keep inserting; every
check counts rows and ids, and reads the catalog.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from tests.conftest import make_settings, run_cli
from tests.observe import wait_until, watcher
from tests.partition_helpers import Writer, monthly_layout, months_since_built
from trackschema.migrations import runner as migrate
from trackschema.partitions import monthly as partitions
from trackschema.audits.partitions import audit_partitions_on
from trackschema.errors import RevisionError
from trackschema.runtime.provision import find_pg_bindir

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)

PARTITIONED = "0030_partition_tracking_tables"
# The revision right before ours in the chain (other issues' revisions sit between 0001 and it).
CORE = str(migrate.script_directory().get_revision(PARTITIONED).down_revision)
INSERT_NOW = "INSERT INTO activity_log (action, occurred_at) VALUES ('live', now()) RETURNING id"
INSERT_OLD = "INSERT INTO activity_log (action, occurred_at) VALUES ('late', now() - make_interval(days => %(d)s)) RETURNING id"

# What other revisions may have added to activity_log before ours runs: a column, a
# row trigger, a statement trigger, a view, a CHECK constraint and a grant.
EXTRAS = """
ALTER TABLE activity_log ADD CONSTRAINT activity_log_entity_event_fk FOREIGN KEY (entity_event_id) REFERENCES entity_events (id);
CREATE INDEX idx_activity_log_entity_event ON activity_log (entity_event_id) WHERE entity_event_id IS NOT NULL;
INSERT INTO entity_events (id, entity_id, action) VALUES ('00000000-0000-7000-8000-00000000e001', gen_random_uuid(), 'INSERT');
ALTER TABLE activity_log ADD CONSTRAINT activity_log_action_not_blank CHECK (action <> '');
CREATE FUNCTION stamp_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.meta := coalesce(NEW.meta, '{{}}'::jsonb) || '{{"stamped": true}}'; RETURN NEW; END $$;
CREATE TRIGGER activity_log_stamp BEFORE INSERT ON activity_log FOR EACH ROW EXECUTE FUNCTION stamp_activity();
CREATE TABLE statement_count (n bigint NOT NULL);
INSERT INTO statement_count VALUES (0);
CREATE FUNCTION count_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE statement_count SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER activity_log_statements AFTER INSERT ON activity_log FOR EACH STATEMENT EXECUTE FUNCTION count_statement();
CREATE VIEW recent_activity AS SELECT id, action, occurred_at FROM activity_log;
CREATE ROLE {role} NOLOGIN;
GRANT SELECT ON activity_log TO {role};
"""
ROLE = f"ts_reader_{os.getpid()}"
SEED = """
INSERT INTO activity_log (action, occurred_at, entity_event_id)
SELECT 'seed', now() - make_interval(mins => g * 7), CASE WHEN g %% 3 = 0 THEN '00000000-0000-7000-8000-00000000e001'::uuid END
  FROM generate_series(1, %(rows)s) AS g
"""


def pg_tool(name: str) -> str:
    bindir = find_pg_bindir()
    assert bindir is not None
    return str(bindir / name)


def schema_dump(url: str) -> str:
    out = subprocess.run([pg_tool("pg_dump"), "--schema-only", url], capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))


def core_with_extras(url: str, rows: int) -> psycopg.Connection:
    migrate.upgrade(make_settings(url), CORE)
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
    conn.execute(sql.SQL(EXTRAS).format(role=sql.Identifier(ROLE)))
    conn.execute(SEED, {"rows": rows})
    return conn


def drop_role(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(ROLE)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))
    conn.close()


def ids(conn: psycopg.Connection, table: str = "activity_log") -> list:
    return [r[0] for r in conn.execute(sql.SQL("SELECT id FROM {}").format(sql.Identifier(*table.split(".")))).fetchall()]


# Polls of pg_locks: often, with a deadline far beyond what any machine needs.
POLL, DEADLINE = 0.02, 90.0
# Rows each writer commits in each window the conversion test makes sure of.
WRITES = 10

# A test-side hook, no product change: an event trigger that runs when a DDL command of
# the conversion ends. Once, at the end of the VALIDATE step (the bound check of
# activity_log is validated, the table is still plain, and this session holds no ACCESS
# EXCLUSIVE lock: only SHARE UPDATE EXCLUSIVE, which writers do not wait for), it waits
# until each writer has committed WRITES more rows. So rows are written between the
# prepared check and the swap at any machine speed, not only when the conversion happens
# to be slow. It records what it saw in conversion_hold.
HOLD_BEFORE_SWAP = """
CREATE TABLE conversion_hold (live_before bigint, late_before bigint, live_after bigint, late_after bigint);
CREATE FUNCTION hold_for_writers() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
    tbl regclass := to_regclass('public.activity_log');
    before_live bigint;
    before_late bigint;
    now_live bigint;
    now_late bigint;
    deadline timestamptz := clock_timestamp() + interval '90 seconds';
BEGIN
    IF tbl IS NULL OR EXISTS (SELECT 1 FROM conversion_hold)
       OR (SELECT relkind FROM pg_class WHERE oid = tbl) <> 'r'
       OR NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = tbl AND conname = 'activity_log_partition_bound' AND convalidated)
       OR EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND mode = 'AccessExclusiveLock' AND locktype = 'relation') THEN
        RETURN;
    END IF;
    SELECT count(*) FILTER (WHERE action = 'live'), count(*) FILTER (WHERE action = 'late') INTO before_live, before_late FROM activity_log;
    LOOP
        SELECT count(*) FILTER (WHERE action = 'live'), count(*) FILTER (WHERE action = 'late') INTO now_live, now_late FROM activity_log;
        EXIT WHEN now_live >= before_live + {writes} AND now_late >= before_late + {writes};
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'the writers did not write while the conversion was held before its swap';
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    INSERT INTO conversion_hold VALUES (before_live, before_late, now_live, now_late);
END $$;
CREATE EVENT TRIGGER hold_conversion_for_writers ON ddl_command_end EXECUTE FUNCTION hold_for_writers();
""".replace("{writes}", str(WRITES))


def test_conversion_under_concurrent_inserts_loses_and_duplicates_nothing(empty_db_url: str) -> None:
    """Writers insert before, during and after the conversion. Each window is made sure
    of, not hoped for: the test waits for the writers' first rows before it starts, the
    HOLD_BEFORE_SWAP hook holds the conversion after VALIDATE until they have written
    more, and the test waits for more rows (into the partitioned table) before it stops."""
    conn = core_with_extras(empty_db_url, rows=60_000)
    conn.execute(HOLD_BEFORE_SWAP)
    seeded = set(ids(conn))
    writers = [
        Writer(empty_db_url, INSERT_NOW, lambda n: {}),
        Writer(empty_db_url, INSERT_OLD, lambda n: {"d": 1 + n % 700}),
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.wait_for_rows(1)
    migrate.upgrade(make_settings(empty_db_url), PARTITIONED)
    held = conn.execute("SELECT live_after - live_before, late_after - late_before FROM conversion_hold").fetchall()
    conn.execute("DROP EVENT TRIGGER hold_conversion_for_writers")
    for w in writers:
        w.wait_for_rows(len(w.ids) + WRITES)  # into the partitioned table
    for w in writers:
        w.finish()

    assert len(held) == 1 and all(n >= WRITES for n in held[0]), "the hook held the conversion while both writers wrote"
    assert [w.errors for w in writers] == [[], []]
    written = {i for w in writers for i in w.ids}
    assert all(len(w.ids) > 2 * WRITES for w in writers), "the writers kept writing through the conversion"
    everything = ids(conn)
    assert len(everything) == len(set(everything)), "no row is duplicated"
    assert set(everything) == seeded | written, "every row is there, queryable through the parent"
    assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("p",)
    parts = partitions.partitions_of(conn, "activity_log")
    assert parts[0].partition == "activity_log_history" and parts[0].lower is None
    assert sum(p.rows for p in parts) == len(everything)
    assert len(parts) >= 4 and all(p.upper is not None for p in parts)
    # the primary key includes the partition key; the old indexes kept their names on the parent
    pk = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'activity_log'::regclass AND contype = 'p'").fetchone()
    assert pk == ("PRIMARY KEY (id, occurred_at)",)
    names = {r[0] for r in conn.execute("SELECT relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE i.indrelid = 'activity_log'::regclass")}
    assert {"activity_log_pkey", "idx_activity_log_user_time", "idx_activity_log_action_time",
            "idx_activity_log_entity_event"} <= names
    # what other revisions added came along: column, check, triggers, view, grant
    future = parts[-1].lower
    row = conn.execute(
        "INSERT INTO activity_log (action, occurred_at, entity_event_id) VALUES ('next', %s, '00000000-0000-7000-8000-00000000e001') "
        "RETURNING tableoid::regclass::text, meta",
        (future,),
    ).fetchone()
    assert row == (parts[-1].partition, {"stamped": True})
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("INSERT INTO activity_log (action, occurred_at, entity_event_id) VALUES ('x', %s, gen_random_uuid())", (future,))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO activity_log (action) VALUES ('')")
    before = conn.execute("SELECT n FROM statement_count").fetchone()[0]
    conn.execute("INSERT INTO activity_log (action) VALUES ('one statement')")
    assert conn.execute("SELECT n FROM statement_count").fetchone()[0] == before + 1
    assert conn.execute("SELECT count(*) FROM recent_activity").fetchone() == (len(everything) + 2,)
    assert conn.execute("SELECT has_table_privilege(%s, 'activity_log', 'SELECT')", (ROLE,)).fetchone() == (True,)
    # the bound check is gone, and nothing was left INVALID
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname LIKE '%partition_bound'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone() == (0,)
    drop_role(conn)


def test_downgrade_gives_back_the_plain_table_with_every_row_and_the_same_schema(empty_db_url: str) -> None:
    conn = core_with_extras(empty_db_url, rows=20_000)
    before = schema_dump(empty_db_url)
    migrate.upgrade(make_settings(empty_db_url), PARTITIONED)
    # rows in the monthly partitions too, not only in the history one
    conn.execute(
        "INSERT INTO activity_log (action, occurred_at) SELECT 'ahead', now() + make_interval(days => g) FROM generate_series(1, 70) AS g"
    )
    everything = sorted(ids(conn))
    writer = Writer(empty_db_url, INSERT_NOW, lambda n: {}, pause=0.002)
    writer.start()
    migrate.downgrade(make_settings(empty_db_url), CORE)
    writer.finish()
    assert writer.errors == []
    after_rows = ids(conn)
    assert len(after_rows) == len(set(after_rows))
    assert set(after_rows) == set(everything) | set(writer.ids)
    assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("r",)
    assert conn.execute("SELECT to_regclass('trackschema.partitioned_tables')").fetchone() == (None,)
    conn.execute("DELETE FROM activity_log")  # the writer's and our rows differ from the dump's data, not its schema
    assert schema_dump(empty_db_url) == before
    drop_role(conn)


def test_downgrade_after_the_history_partition_was_retired(db_url: str, conn: psycopg.Connection) -> None:
    history = partitions.partitions_of(conn, "activity_log")[0]
    conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'ahead', now() + make_interval(days => g) FROM generate_series(40, 80) AS g")
    retired = partitions.retire(make_settings(db_url), before=history.upper, action="drop", table="activity_log")
    assert [p.partition for p in retired.partitions] == ["activity_log_history"]
    expected = sorted(ids(conn))
    migrate.downgrade(make_settings(db_url), CORE)
    assert sorted(ids(conn)) == expected
    indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'activity_log'").fetchall())
    assert set(indexes) == {"activity_log_pkey", "idx_activity_log_user_time", "idx_activity_log_action_time"}
    assert indexes["activity_log_pkey"].endswith("USING btree (id)")
    assert conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'activity_log'::regclass AND contype = 'p'").fetchone() == ("PRIMARY KEY (id)",)


def test_a_30_day_query_over_24_monthly_partitions_plans_at_most_2(conn: psycopg.Connection) -> None:
    start = monthly_layout(conn, months_back=23)
    conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'x', g FROM generate_series(%s, now(), interval '1 hour') AS g", (start,))
    conn.execute("ANALYZE activity_log")
    assert len(partitions.partitions_of(conn, "activity_log")) >= 24

    def scanned(plan: dict) -> list[str]:
        found = [plan["Relation Name"]] if "Relation Name" in plan else []
        for child in plan.get("Plans", []):
            found += scanned(child)
        return found

    now = conn.execute("SELECT now()").fetchone()[0]
    literal = conn.execute(
        "EXPLAIN (FORMAT JSON) SELECT count(*) FROM activity_log WHERE occurred_at >= %s AND occurred_at < %s",
        (now - timedelta(days=30), now),
    ).fetchone()[0]
    assert 1 <= len(set(scanned(literal[0]["Plan"]))) <= 2
    runtime = conn.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM activity_log WHERE occurred_at >= now() - interval '30 days' AND occurred_at < now()"
    ).fetchone()[0]
    assert 1 <= len(set(scanned(runtime[0]["Plan"]))) <= 2


def test_retire_dry_run_changes_nothing(db_url: str, conn: psycopg.Connection) -> None:
    start = monthly_layout(conn, months_back=6)
    inserted = conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'x', g FROM generate_series(%s, now(), interval '1 day') AS g", (start,)).rowcount
    before = [p.to_dict() for p in partitions.partitions_of(conn, "activity_log")]
    result = run_cli("partitions", "retire", "--older-than", "60d", "--dry-run", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and len(plan["partitions"]) >= 3
    assert all(p["done"] is False and p["action"] == "archive" for p in plan["partitions"])
    assert [p.to_dict() for p in partitions.partitions_of(conn, "activity_log")] == before
    assert conn.execute("SELECT to_regnamespace('archive')").fetchone() == (None,)
    assert conn.execute("SELECT count(*) FROM activity_log").fetchone() == (inserted,)


def test_retire_is_boundary_exact_then_archives_or_drops(db_url: str, conn: psycopg.Connection) -> None:
    start = monthly_layout(conn, months_back=4)
    conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'x', g FROM generate_series(%s, now(), interval '1 hour') AS g", (start,))
    parts = partitions.partitions_of(conn, "activity_log")
    oldest, second = parts[0], parts[1]
    settings = make_settings(db_url)

    # A cutoff one microsecond before the end of the oldest month: that month still
    # might hold a row at the cutoff or after it, so nothing is retired.
    assert oldest.upper is not None
    early = partitions.retire(settings, before=oldest.upper - timedelta(microseconds=1))
    assert early.partitions == []
    # Exactly at its end: every row it can hold is older, so it goes (and only it).
    done = partitions.retire(settings, before=oldest.upper)
    assert [p.partition for p in done.partitions] == [oldest.partition] and done.partitions[0].done
    archived = f"archive.{oldest.partition}"
    assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*archived.split(".")))).fetchone() == (oldest.rows,)
    assert conn.execute("SELECT relispartition FROM pg_class WHERE oid = %s::regclass", (archived,)).fetchone() == (False,)
    remaining = partitions.partitions_of(conn, "activity_log")
    assert remaining[0].partition == second.partition
    assert conn.execute("SELECT count(*) FROM activity_log").fetchone() == (sum(p.rows for p in parts) - oldest.rows,)

    result = run_cli("partitions", "retire", "--before", second.upper.isoformat(), "--drop", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    assert [p["partition"] for p in json.loads(result.stdout)["partitions"]] == [second.partition]
    assert conn.execute("SELECT to_regclass(%s)", (second.partition,)).fetchone() == (None,)


def test_ensure_makes_months_ahead_idempotently_and_status_reports_them(db_url: str, conn: psycopg.Connection) -> None:
    settings = make_settings(db_url)
    before = {h.parent: h for h in partitions.health(conn)}
    ahead = 3 - months_since_built(conn)  # a fresh database has 3 months ahead of the month it was made in
    assert before["activity_log"].months_ahead == ahead and before["analytics_events"].months_ahead == ahead
    created = partitions.ensure(settings, months_ahead=6, table="activity_log")
    assert [c.parent for c in created] == ["activity_log"] * (6 - ahead)
    assert [c.lower.month for c in created] == [(before["activity_log"].newest_bound.month + k - 1) % 12 + 1 for k in range(6 - ahead)]
    assert partitions.ensure(settings, months_ahead=6, table="activity_log") == []
    result = run_cli("status", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    status = {p["parent"]: p for p in json.loads(result.stdout)["partitions"]}
    ahead = 3 - months_since_built(conn)
    assert status["activity_log"]["months_ahead"] == 6 and status["analytics_events"]["months_ahead"] == ahead
    assert status["activity_log"]["ok"] is True

    listed = run_cli("partitions", "list", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    rows = json.loads(listed.stdout)
    assert {"parent", "partition", "from", "to", "rows", "bytes"} <= set(rows[0])
    assert {r["parent"] for r in rows} == {"activity_log", "analytics_events", "entity_events"}  # entity_events: revision 0090

    def bounds() -> set[tuple[str, str]]:
        return {(r["parent"], r["from"]) for r in json.loads(
            run_cli("partitions", "list", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url}).stdout) if r["from"]}

    existing = bounds()
    job = run_cli("jobs", "run", "partition-maintenance", "--param", "months_ahead=7", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert job.returncode == 0, job.stderr
    made = json.loads(job.stdout)["result"]["created"]
    # exactly the months that were missing (one for activity_log, 4 each for analytics_events
    # and entity_events within one month; more when the clock has crossed into a new month since)
    assert {(m["parent"], m["from"]) for m in made} == bounds() - existing
    assert sorted({m["parent"] for m in made}) == ["activity_log", "analytics_events", "entity_events"]
    assert len(made) >= 1 + 2 * (7 - ahead)
    assert {h.parent: h.months_ahead for h in partitions.health(conn)} == {"activity_log": 7, "analytics_events": 7, "entity_events": 7}


def test_rows_outside_every_partition_are_refused_without_a_default_partition(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match="no partition of relation"):
        conn.execute("INSERT INTO activity_log (action, occurred_at) VALUES ('far', now() + interval '3 years')")
    assert audit_partitions_on(conn) == []


def test_default_partition_rows_are_reported_then_drained_by_ensure(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKSCHEMA_PARTITIONED_TABLES", "activity_log+default")
    migrate.upgrade(make_settings(empty_db_url), "head")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT array_agg(parent_name ORDER BY parent_name) FROM trackschema.partitioned_tables").fetchone() == (["activity_log", "entity_events"],)  # entity_events: partitioned by 0090 itself
        far = conn.execute(
            "INSERT INTO activity_log (action, occurred_at) VALUES ('far', now() + interval '2 years') RETURNING id, tableoid::regclass::text"
        ).fetchone()
        assert far[1] == "activity_log_default"
        findings = audit_partitions_on(conn)
        assert [(f.kind, f.table) for f in findings] == [("default_partition_rows", "activity_log")]
        assert partitions.health(conn)[0].default_rows == 1
        created = partitions.ensure(make_settings(empty_db_url))
        assert [c.rows_moved for c in created] == [1]
        moved = conn.execute("SELECT tableoid::regclass::text FROM activity_log WHERE id = %s", (far[0],)).fetchone()
        assert moved == (created[0].partition,)
        assert partitions.health(conn)[0].default_rows == 0 and audit_partitions_on(conn) == []
    migrate.downgrade(make_settings(empty_db_url), CORE)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*), bool_and(action = 'far') FROM activity_log").fetchone() == (1, True)


def test_tables_referenced_by_foreign_keys_are_refused_with_the_reason(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    migrate.upgrade(make_settings(empty_db_url), CORE)
    functions = "SELECT count(*) FROM pg_proc WHERE pronamespace = 'trackschema'::regnamespace"
    with psycopg.connect(empty_db_url) as conn:
        functions_before = conn.execute(functions).fetchone()
    monkeypatch.setenv("TRACKSCHEMA_PARTITIONED_TABLES", "calendar_events")
    with pytest.raises(RevisionError, match="foreign keys reference it.*calendar_projections"):
        migrate.upgrade(make_settings(empty_db_url), PARTITIONED)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'calendar_events'::regclass").fetchone() == ("r",)
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname LIKE '%partition_bound'").fetchone() == (0,)
        # nothing of the failed revision is left: not even its functions and registry
        assert conn.execute("SELECT to_regclass('trackschema.partitioned_tables')").fetchone() == (None,)
        assert conn.execute(functions).fetchone() == functions_before
    assert migrate.current_heads(make_settings(empty_db_url)) == [CORE]
    migrate.downgrade(make_settings(empty_db_url), "base")


def test_offline_sql_refuses_a_large_table_and_names_the_statements_to_run(empty_db_url: str) -> None:
    migrate.upgrade(make_settings(empty_db_url), CORE)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'x', now() - make_interval(mins => g) FROM generate_series(1, 60000) AS g")
    offline = migrate.upgrade(make_settings(None), f"{CORE}:{PARTITIONED}", sql=True).sql
    assert offline and "partition_convert_swap(to_regclass('activity_log')" in offline
    applied = subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_db_url], input=offline, capture_output=True, text=True)
    assert applied.returncode != 0
    assert "partition_prebuild_sql('public.activity_log')" in applied.stderr
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("r",)
        # doing what the hint says, then applying the same SQL again, converts the table
        for (statement,) in conn.execute("SELECT * FROM trackschema.partition_prebuild_sql('public.activity_log')").fetchall():
            conn.execute(statement)
    again = subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_db_url], input=offline, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT relkind::text, (SELECT count(*) FROM activity_log) FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("p", 60000)


def test_unknown_table_is_a_one_line_error(db_url: str) -> None:
    result = run_cli("partitions", "list", "--table", "contacts", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 2
    assert "contacts is not partitioned by trackschema" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("partitions", "retire", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 2 and "--older-than" in result.stderr


def test_an_interrupted_concurrent_detach_is_reported_then_finished_by_retire(db_url: str, conn: psycopg.Connection) -> None:
    start = monthly_layout(conn, months_back=3)
    conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'x', g FROM generate_series(%s, now(), interval '1 day') AS g", (start,))
    oldest = partitions.partitions_of(conn, "activity_log")[0]
    detach = sql.SQL("ALTER TABLE activity_log DETACH PARTITION {} CONCURRENTLY").format(sql.Identifier(*oldest.partition.split(".")))
    with psycopg.connect(db_url) as reader, psycopg.connect(db_url, autocommit=True) as detacher:
        reader.execute("SELECT count(*) FROM activity_log").fetchone()  # an open transaction that has read the table
        outcome: list[BaseException | None] = []

        def run_detach() -> None:
            try:
                detacher.execute(detach)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - checked below
                outcome.append(exc)

        detaching = threading.Thread(target=run_detach, daemon=True)
        detaching.start()
        # Interrupted at a point the test sees, not after a statement_timeout: the first
        # transaction of the detach has committed (detach pending) and the second waits
        # for the reader; then the test cancels it.
        deadline = time.monotonic() + DEADLINE
        while conn.execute(
            """SELECT NOT (SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = %s::regclass)
                   OR (SELECT wait_event_type IS DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE pid = %s)""",
            (oldest.partition, detacher.info.backend_pid),
        ).fetchone() != (False,):
            assert detaching.is_alive(), outcome
            assert time.monotonic() < deadline, "the detach never waited for the reader with its first step committed"
            time.sleep(POLL)
        conn.execute("SELECT pg_cancel_backend(%s)", (detacher.info.backend_pid,))
        detaching.join(DEADLINE)
        assert len(outcome) == 1 and isinstance(outcome[0], psycopg.errors.QueryCanceled), outcome
        reader.rollback()
    state = {h.parent: h for h in partitions.health(conn)}["activity_log"]
    assert state.detach_pending == [oldest.partition]
    assert [(f.kind, f.fix) for f in audit_partitions_on(conn)] == [
        ("detach_pending", f"ALTER TABLE activity_log DETACH PARTITION {oldest.partition} FINALIZE")
    ]
    done = partitions.retire(make_settings(db_url), before=oldest.upper, table="activity_log")
    assert [(p.partition, p.destination) for p in done.partitions] == [(oldest.partition, f"archive.{oldest.partition}")]
    assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("archive", oldest.partition))).fetchone() == (oldest.rows,)
    assert audit_partitions_on(conn) == []


def test_a_default_table_removed_earlier_is_skipped_but_a_declared_one_must_exist(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKSCHEMA_PARTITIONED_TABLES", raising=False)
    migrate.upgrade(make_settings(empty_db_url), CORE)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE analytics_events RENAME TO analytics_events_legacy")
        migrate.upgrade(make_settings(empty_db_url), PARTITIONED)
        assert conn.execute("SELECT array_agg(parent_name) FROM trackschema.partitioned_tables").fetchone() == (["activity_log"],)
        migrate.downgrade(make_settings(empty_db_url), CORE)
        monkeypatch.setenv("TRACKSCHEMA_PARTITIONED_TABLES", "activity_log,analytics_events")
        with pytest.raises(RevisionError, match='relation "analytics_events" does not exist'):
            migrate.upgrade(make_settings(empty_db_url), PARTITIONED)
        assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("r",)


# The conversion's step lock timeout here: min(lock_timeout, 500ms). A writer queued
# behind a step's waiting ACCESS EXCLUSIVE request waits at most about that long; the bound
# on a writer's longest insert is that timeout plus 1.5 s of headroom for a loaded machine
# (a bound on time is the property under test).
STEP_LOCK_TIMEOUT = 0.3
WRITER_WAIT_BOUND = STEP_LOCK_TIMEOUT + 1.5


def test_a_long_reader_delays_the_conversion_but_writers_never_queue_long(empty_db_url: str) -> None:
    """While a long transaction holds the table, each attempt of a conversion step gives
    up after the short step lock timeout, so writers queued behind it wait at most that
    long. The reader lets go only once the test has seen, in pg_locks, the conversion wait
    for its lock and the writer queue behind it, then that queued writer get through
    (and 50 rows in all) while the reader still held its lock."""
    migrate.upgrade(make_settings(empty_db_url), CORE)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO activity_log (action, occurred_at) SELECT 'seed', now() - make_interval(mins => g) FROM generate_series(1, 20000) AS g")
    reader = psycopg.connect(empty_db_url)
    reader.execute("SELECT count(*) FROM activity_log").fetchone()  # holds ACCESS SHARE until it ends
    writer = Writer(empty_db_url, INSERT_NOW, lambda n: {}, pause=0.005)
    writer.start()
    writer_pid = writer.wait_for_pid()

    def release_when_seen() -> None:
        with psycopg.connect(empty_db_url, autocommit=True) as watching:
            def waiting(pid_filter: str, arg: object) -> bool:
                row = watching.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    f"WHERE l.relation = to_regclass('public.activity_log') AND NOT l.granted AND {pid_filter})", (arg,)
                ).fetchone()
                return bool(row and row[0])

            wait_until(lambda: waiting("a.application_name = %s", "trackschema-migrate"), "the conversion waiting for the reader's lock")
            rows_then = len(writer.ids)
            wait_until(lambda: waiting("a.pid = %s", writer_pid), "the writer queued behind the conversion")
            writer.wait_for_rows(len(writer.ids) + 1)  # the queued insert went through ...
            writer.wait_for_rows(rows_then + 50)
            with psycopg.connect(empty_db_url, autocommit=True) as probe:  # ... and the reader still holds the table
                assert probe.execute("SELECT relkind::text FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("r",)

    try:
        with watcher(release_when_seen, release=reader.rollback):
            migrate.upgrade(make_settings(empty_db_url, lock_timeout=STEP_LOCK_TIMEOUT, lock_retries=6), PARTITIONED)
    finally:
        writer.finish()
        reader.close()
    assert writer.errors == [] and len(writer.ids) > 50
    # queued behind a step's lock request, a writer would wait out the reader; each
    # attempt gives up after STEP_LOCK_TIMEOUT instead (see WRITER_WAIT_BOUND)
    assert writer.longest < WRITER_WAIT_BOUND, f"a writer waited {writer.longest:.2f}s"
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'activity_log'::regclass").fetchone() == ("p",)
        assert conn.execute("SELECT count(*) FROM activity_log").fetchone() == (20_000 + len(writer.ids),)
