"""Materialized views (revision 0040) and the refresh-matviews job, on real PostgreSQL.

The views are checked against independent raw queries (the seed's own per-branch
queries where they run, and Python over the raw rows); the concurrency tests use real
sessions and real locks: a base-table lock parks a refresh in mid-flight while a reader
is timed and an overlapping run is attempted.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime

import psycopg
import pytest
from psycopg import sql

from tests.analytics_helpers import DEADLINE, wait_until
from tests.conftest import make_settings, run_cli
from trackschema.jobs import registry as jobs
from trackschema.analytics import matviews
from trackschema.migrations import runner as migrate

pytestmark = pytest.mark.clock  # dates relative to the clock: also run at other instants (docs/time.md)

VIEWS = {"analytics_dashboard", "contact_management_view", "dashboard_statistics"}

PLANNER_DATA = """
INSERT INTO roadmap_items (master_project_id, title, status, start_date, end_date, updated_at)
SELECT ('00000000-0000-7000-8000-' || lpad((g % 7)::text, 12, '0'))::uuid, 'item ' || g,
       (ARRAY['active', 'completed', 'blocked', 'archived'])[1 + (g * 13 / 7) % 4],
       current_date - 40 + g % 60,
       CASE WHEN g % 9 = 0 THEN NULL ELSE current_date - 20 + (g * 7) % 50 END,
       now() - make_interval(mins => g)
FROM generate_series(1, 3000) AS g;

INSERT INTO calendar_events (id, user_id, title, start_at)
SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, '00000000-0000-7000-8000-0000000000a1',
       'event ' || g, now() + make_interval(days => g)
FROM generate_series(1, 60) AS g;

INSERT INTO calendar_projections (calendar_event_id, target_user_id, status, created_at, updated_at)
SELECT ('00000000-0000-7000-8000-' || lpad((1 + g % 60)::text, 12, '0'))::uuid,
       ('00000000-0000-7000-8000-0000000001' || lpad((g % 9)::text, 2, '0'))::uuid,
       (ARRAY['pending', 'accepted', 'declined'])[1 + (g * 5 / 9) % 3],
       now() - make_interval(hours => g), now() - make_interval(mins => g)
FROM generate_series(1, 900) AS g;
"""

# The seed's (004 §5) two branches, each exactly as written: each runs on its own; their
# UNION does not (7 vs 6 columns, uuid vs text ids).
SEED_PROJECT_BRANCH = """
SELECT
  'project' AS entity_type,
  master_project_id AS entity_id,
  COUNT(*) FILTER (WHERE status = 'active') AS active_items,
  COUNT(*) FILTER (WHERE status = 'completed') AS completed_items,
  COUNT(*) FILTER (WHERE status = 'blocked') AS blocked_items,
  MIN(start_date) FILTER (WHERE start_date IS NOT NULL) AS next_deadline,
  MAX(updated_at) AS last_updated
FROM roadmap_items
GROUP BY master_project_id
"""
SEED_CALENDAR_BRANCH = """
SELECT
  'calendar' AS entity_type,
  target_user_id::text AS entity_id,
  COUNT(*) FILTER (WHERE status = 'pending') AS pending_projections,
  COUNT(*) FILTER (WHERE status = 'accepted') AS accepted_projections,
  NULL::date AS next_deadline,
  MAX(created_at) AS last_updated
FROM calendar_projections
GROUP BY target_user_id
"""
SEED_UNION = sql.SQL(" UNION ALL ").join([sql.SQL(SEED_PROJECT_BRANCH), sql.SQL(SEED_CALENDAR_BRANCH)])


def refresh(db_url: str, **params: str) -> jobs.JobRun:
    return jobs.run(make_settings(db_url), "refresh-matviews", dict(params))


def view_rows(conn: psycopg.Connection, query: str) -> dict[object, tuple]:
    return {row[0]: tuple(row[1:]) for row in conn.execute(query).fetchall()}


# --- the views ------------------------------------------------------------------------


def test_revision_creates_views_with_concurrent_refresh_keys_and_search_indexes(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """SELECT c.relname, c.relispopulated FROM pg_class c WHERE c.relkind = 'm' AND c.relnamespace = 'public'::regnamespace"""
    ).fetchall()
    assert {name for name, _ in rows} == VIEWS
    assert all(populated for _, populated in rows)
    indexes = {
        (name, unique, definition.split(" USING btree ")[1])
        for name, unique, definition in conn.execute(
            """SELECT i.indexrelid::regclass::text, i.indisunique, pg_get_indexdef(i.indexrelid)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relkind = 'm'"""
        ).fetchall()
    }
    assert indexes == {
        ("dashboard_statistics_key", True, "(entity_type, entity_id)"),
        ("contact_management_view_key", True, "(contact_id, address_key)"),
        ("idx_contact_management_view_name", False, "(first_name, last_name)"),
        ("idx_contact_management_view_email", False, "(email)"),
        ("analytics_dashboard_key", True, "(user_code, day)"),
    }
    # the refresh keys are on columns that are never NULL (a NULL key re-inserts its row on every refresh)
    registered = conn.execute(
        "SELECT view_name, refresh_mode, refreshed_at IS NOT NULL FROM trackschema.matview_refreshes ORDER BY refresh_order"
    ).fetchall()
    assert registered == [("analytics_dashboard", "create", True), ("contact_management_view", "create", True), ("dashboard_statistics", "create", True)]


def test_seed_union_does_not_run_but_dashboard_statistics_does(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.SyntaxError, match="same number of columns"):
        conn.execute(SEED_UNION)
    conn.execute("SELECT * FROM dashboard_statistics").fetchall()


def test_dashboard_statistics_gives_the_numbers_of_the_raw_queries(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(PLANNER_DATA)
    stale = conn.execute("SELECT count(*) FROM dashboard_statistics").fetchone()
    assert stale == (0,), "a materialized view shows what it held at its last refresh"
    assert refresh(db_url).status == "succeeded"

    projects = view_rows(conn, """SELECT entity_id, total_items, active_items, completed_items, blocked_items, next_deadline, last_updated
                                    FROM dashboard_statistics WHERE entity_type = 'project'""")
    users = view_rows(conn, """SELECT entity_id, pending_projections, accepted_projections, declined_projections, last_updated
                                 FROM dashboard_statistics WHERE entity_type = 'calendar_user'""")
    assert len(projects) == 7 and len(users) == 9

    # the seed's raw branch queries (each runs on its own): same counts
    seed_projects = view_rows(conn, SEED_PROJECT_BRANCH.replace("'project' AS entity_type,", ""))
    assert {k: (v[1], v[2], v[3], v[5]) for k, v in projects.items()} == {k: (v[0], v[1], v[2], v[4]) for k, v in seed_projects.items()}
    seed_users = view_rows(conn, SEED_CALENDAR_BRANCH.replace("'calendar' AS entity_type,", ""))
    assert {str(k): (v[0], v[1]) for k, v in users.items()} == {k: (v[0], v[1]) for k, v in seed_users.items()}

    # and Python over the raw rows, for what the seed got wrong or left out
    today = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]  # type: ignore[index]
    expected: dict[object, list] = defaultdict(lambda: [0, 0, 0, 0, None, None])
    for project, status, end_date, updated_at in conn.execute("SELECT master_project_id, status, end_date, updated_at FROM roadmap_items"):
        e = expected[project]
        e[0] += 1
        if status in ("active", "completed", "blocked"):
            e[1 + ["active", "completed", "blocked"].index(status)] += 1
        if status in ("active", "blocked") and end_date is not None and end_date >= today:
            e[4] = end_date if e[4] is None else min(e[4], end_date)
        e[5] = updated_at if e[5] is None else max(e[5], updated_at)
    assert projects == {k: tuple(v) for k, v in expected.items()}
    raw_users: dict[object, list] = defaultdict(lambda: [0, 0, 0, None])
    for user, status, updated_at in conn.execute("SELECT target_user_id, status, updated_at FROM calendar_projections"):
        u = raw_users[user]
        u[["pending", "accepted", "declined"].index(status)] += 1
        u[3] = updated_at if u[3] is None else max(u[3], updated_at)
    assert users == {k: tuple(v) for k, v in raw_users.items()}

    # a change shows after the next refresh, not before
    conn.execute("UPDATE roadmap_items SET status = 'completed' WHERE master_project_id = '00000000-0000-7000-8000-000000000003'")
    before = conn.execute("SELECT completed_items FROM dashboard_statistics WHERE entity_id = '00000000-0000-7000-8000-000000000003'").fetchone()
    refresh(db_url)
    after = conn.execute(
        "SELECT total_items, completed_items, active_items FROM dashboard_statistics WHERE entity_id = '00000000-0000-7000-8000-000000000003'"
    ).fetchone()
    assert before is not None and after is not None
    assert after[0] == after[1] > before[0] and after[2] == 0


def test_contact_management_view_rows_counts_and_churn_free_refresh(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(
        """
        INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact'), ('address', 'Address');
        INSERT INTO entities (id, entity_type_id)
        SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,
               (SELECT id FROM entity_types WHERE name = CASE WHEN g <= 300 THEN 'contact' ELSE 'address' END)
        FROM generate_series(1, 500) AS g;
        INSERT INTO contacts (id, first_name, last_name, email)
        SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, 'First' || g, 'Last' || (g % 40), 'c' || g || '@example.com'
        FROM generate_series(1, 300) AS g;
        INSERT INTO addresses (id, street, city, state, postal_code)
        SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, g || ' Main St', 'Springfield', 'IL', '62701'
        FROM generate_series(301, 500) AS g;
        -- contacts 1-100: no address; 101-200: one; 201-300: two
        INSERT INTO address_contacts (address_id, contact_id)
        SELECT ('00000000-0000-7000-8000-' || lpad((200 + g)::text, 12, '0'))::uuid, ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid
        FROM generate_series(101, 300) AS g
        UNION ALL
        SELECT ('00000000-0000-7000-8000-' || lpad((200 + g - 100)::text, 12, '0'))::uuid, ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid
        FROM generate_series(201, 300) AS g;
        INSERT INTO entity_touchpoints (entity_id, touchpoint_type, occurred_at)
        SELECT ('00000000-0000-7000-8000-' || lpad((1 + g % 150)::text, 12, '0'))::uuid, 'call', now() - make_interval(hours => g)
        FROM generate_series(1, 1000) AS g;
        """
    )
    refresh(db_url)
    rows = conn.execute(
        "SELECT contact_id, address_id, address_key, touchpoint_count, last_touchpoint_date FROM contact_management_view"
    ).fetchall()
    assert len(rows) == 100 + 100 + 2 * 100
    assert sum(1 for r in rows if r[1] is None) == 100
    assert all(r[2] == (r[1] or uuid.UUID(int=0)) for r in rows)
    raw = dict(conn.execute("SELECT entity_id, count(*) FROM entity_touchpoints GROUP BY 1").fetchall())
    last = dict(conn.execute("SELECT entity_id, max(occurred_at) FROM entity_touchpoints GROUP BY 1").fetchall())
    for contact, _, _, count, last_at in rows:
        assert count == raw.get(contact, 0)
        assert last_at == last.get(contact)

    # REFRESH CONCURRENTLY rewrites only rows that changed, also for contacts without an address
    def deleted() -> int:
        # The refresh ran in another backend, which flushes its statistics as it exits
        # (before it leaves pg_stat_activity); wait until no other client backend of this
        # database is left before reading them.
        wait_until(lambda: conn.execute(
            """SELECT count(*) = 0 FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"""
        ).fetchone() == (True,), "the refresh's backend to exit")
        return conn.execute("SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = 'contact_management_view'").fetchone()[0]  # type: ignore[index]

    start = deleted()
    refresh(db_url)
    assert deleted() == start
    conn.execute("UPDATE contacts SET first_name = 'Renamed' WHERE id = '00000000-0000-7000-8000-000000000005'")
    refresh(db_url)
    assert deleted() == start + 1
    name = conn.execute("SELECT first_name FROM contact_management_view WHERE contact_id = '00000000-0000-7000-8000-000000000005'").fetchone()
    assert name == ("Renamed",)


def test_analytics_dashboard_gives_the_numbers_of_the_raw_dashboard_query(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(
        """
        INSERT INTO analytics_sessions (session_id, user_code, share_code, first_seen, last_seen)
        SELECT 's' || g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'user' || (g % 4) END, 'share' || (g % 3),
               now() - make_interval(hours => g * 5), now() - make_interval(hours => g * 5) + interval '10 minutes'
        FROM generate_series(1, 400) AS g;
        INSERT INTO analytics_page_views (session_id, user_code, share_code, page_type, viewed_at)
        SELECT s.session_id, s.user_code, s.share_code, 'home', s.first_seen + make_interval(secs => p)
        FROM analytics_sessions s CROSS JOIN generate_series(1, 5) AS p;
        INSERT INTO analytics_clicks (session_id, user_code, share_code, click_target, clicked_at)
        SELECT s.session_id, s.user_code, s.share_code, 'phone', s.first_seen + make_interval(secs => 30 * p)
        FROM analytics_sessions s CROSS JOIN generate_series(1, 2) AS p WHERE s.session_id LIKE '%7';
        """
    )
    refresh(db_url)
    for user in ("user0", "user1", "user3"):
        # the seed's dashboard query shape (003), on the raw tables, last 30 days
        raw = conn.execute(
            """SELECT (SELECT count(*) FROM analytics_sessions WHERE user_code = %(u)s AND first_seen >= %(since)s),
                      (SELECT count(*) FROM analytics_page_views WHERE user_code = %(u)s AND viewed_at >= %(since)s),
                      (SELECT count(*) FROM analytics_clicks WHERE user_code = %(u)s AND clicked_at >= %(since)s)""",
            {"u": user, "since": _utc_midnight(conn, 30)},
        ).fetchone()
        view = conn.execute(
            """SELECT sum(sessions), sum(page_views), sum(clicks) FROM analytics_dashboard
                WHERE user_code = %s AND day >= (now() AT TIME ZONE 'UTC')::date - 30""",
            (user,),
        ).fetchone()
        assert raw is not None and view is not None and raw[1] > 0
        assert tuple(int(x) for x in view) == raw
    assert conn.execute("SELECT count(*) FROM analytics_dashboard WHERE user_code IS NULL").fetchone() == (0,)
    totals = conn.execute("SELECT sum(sessions), sum(page_views), sum(clicks) FROM analytics_dashboard").fetchone()
    assert totals == (360, 1800, 80)


def _utc_midnight(conn: psycopg.Connection, days_ago: int) -> datetime:
    row = conn.execute("SELECT ((now() AT TIME ZONE 'UTC')::date - %s)::timestamp AT TIME ZONE 'UTC'", (days_ago,)).fetchone()
    assert row is not None
    return row[0]


# --- the job: concurrency, staleness, failures ------------------------------------------


class ParkedRefresh:
    """A refresh-matviews run parked mid-flight: a session holds ACCESS EXCLUSIVE on
    roadmap_items, so the run refreshes the first two views and then waits inside
    `REFRESH ... dashboard_statistics`, holding that view's lock."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.blocker = psycopg.connect(db_url)
        self.blocker.execute("LOCK TABLE roadmap_items IN ACCESS EXCLUSIVE MODE")
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.outcome.append(refresh(self.db_url))
        except Exception as exc:  # noqa: BLE001 - reported by finish()
            self.outcome.append(exc)

    def start(self, observer: psycopg.Connection) -> int:
        """Start the run and return its backend pid once it waits on the lock."""
        self.thread.start()
        found: list[int] = []

        def parked() -> bool:
            row = observer.execute(
                """SELECT pid FROM pg_stat_activity
                    WHERE application_name = 'trackschema-job:refresh-matviews' AND wait_event_type = 'Lock'
                      AND datname = current_database()"""
            ).fetchone()
            found.extend(row or ())
            return bool(row)

        wait_until(parked, "the refresh to reach the lock")
        return int(found[0])

    def still_parked(self, observer: psycopg.Connection, pid: int) -> bool:
        row = observer.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        return row == (True,) and self.thread.is_alive()

    def finish(self) -> jobs.JobRun:
        self.blocker.rollback()
        self.blocker.close()
        self.thread.join(DEADLINE)
        assert self.outcome, "the refresh did not finish"
        result = self.outcome[0]
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, jobs.JobRun)
        return result


def _read(db_url: str, query: str, lock_timeout: float) -> object:
    """`query` in a new session whose lock waits end after `lock_timeout` seconds with
    LockNotAvailable."""
    with psycopg.connect(db_url, autocommit=True) as reader:
        reader.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout * 1000)}ms")))
        return reader.execute(query).fetchall()


# How long the readers below may wait for a lock before LockNotAvailable.
READ_LOCK_TIMEOUT = 1.0


def test_reader_is_not_blocked_while_a_concurrent_refresh_runs(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute(PLANNER_DATA)
    refresh(db_url)
    before = conn.execute("SELECT count(*), sum(total_items) FROM dashboard_statistics").fetchone()
    conn.execute("INSERT INTO calendar_projections (calendar_event_id, target_user_id) SELECT id, gen_random_uuid() FROM calendar_events LIMIT 5")

    parked = ParkedRefresh(db_url)
    pid = parked.start(conn)
    # the refresh is in progress and holds its lock on the view ...
    held = {mode for (mode,) in conn.execute(
        """SELECT mode FROM pg_locks WHERE pid = %s AND granted AND relation = 'dashboard_statistics'::regclass""", (pid,)
    )}
    assert "ExclusiveLock" in held and "AccessExclusiveLock" not in held, held
    # ... and readers go straight through, seeing the previous contents. Not a matter of
    # speed: the refresh stays parked (holding its lock) until finish(), so a reader it
    # blocked would end in LockNotAvailable after READ_LOCK_TIMEOUT instead of reading.
    for _ in range(5):
        assert _read(db_url, "SELECT count(*), sum(total_items) FROM dashboard_statistics", READ_LOCK_TIMEOUT) == [before]
    assert parked.still_parked(conn, pid), "the reads happened while the refresh was in progress"
    run = parked.finish()
    assert run.status == "succeeded" and set(run.result["refreshed"]) == {f"public.{v}" for v in VIEWS}  # type: ignore[index]
    after = conn.execute("SELECT count(*) FROM dashboard_statistics").fetchone()
    assert after is not None and before is not None and after[0] == before[0] + 5

    # the same read catches a blocking refresh: a plain REFRESH takes ACCESS EXCLUSIVE
    blocker = psycopg.connect(db_url)
    blocker.execute("LOCK TABLE roadmap_items IN ACCESS EXCLUSIVE MODE")
    plain = psycopg.connect(db_url, autocommit=True)
    thread = threading.Thread(target=lambda: plain.execute("REFRESH MATERIALIZED VIEW dashboard_statistics"), daemon=True)
    thread.start()
    try:
        _wait_for_lock_wait(conn, plain.info.backend_pid)
        started = time.perf_counter()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            _read(db_url, "SELECT count(*) FROM dashboard_statistics", READ_LOCK_TIMEOUT)
        # it waited out its lock_timeout (the server cannot give up sooner; 10% for two
        # clocks): blocked, not refused for another reason
        assert time.perf_counter() - started >= 0.9 * READ_LOCK_TIMEOUT
    finally:
        blocker.rollback()
        blocker.close()
        thread.join(DEADLINE)
        plain.close()


def _wait_for_lock_wait(conn: psycopg.Connection, pid: int) -> None:
    wait_until(lambda: conn.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == (True,),
               f"pid {pid} to wait on a lock")


def test_an_overlapping_run_is_refused_from_the_cli_and_from_sql(db_url: str, conn: psycopg.Connection) -> None:
    parked = ParkedRefresh(db_url)
    pid = parked.start(conn)
    cli = run_cli("jobs", "run", "refresh-matviews", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert cli.returncode == 2
    assert "job refresh-matviews is already running" in cli.stderr and str(pid) in cli.stderr
    assert "Traceback" not in cli.stderr
    with psycopg.connect(db_url, autocommit=True) as other, pytest.raises(psycopg.errors.LockNotAvailable, match=f"already running in pid {pid}"):
        other.execute("CALL trackschema.refresh_matviews()")
    running = conn.execute("SELECT status, count(*) FROM trackschema.job_runs WHERE job = 'refresh-matviews' GROUP BY 1").fetchall()
    assert running == [("running", 1)], "refused runs are not recorded"
    assert parked.finish().status == "succeeded"
    # once it is done, the next run goes ahead (the lock was released)
    assert refresh(db_url).status == "succeeded"
    assert conn.execute("SELECT count(*) FROM trackschema.job_runs WHERE status = 'succeeded'").fetchone() == (2,)


def test_if_older_than_skips_views_refreshed_recently(db_url: str, conn: psycopg.Connection) -> None:
    out = run_cli("jobs", "run", "refresh-matviews", "--if-older-than", "5m", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["refreshed"] == {} and set(result["skipped"]) == {f"public.{v}" for v in VIEWS}
    conn.execute("UPDATE trackschema.matview_refreshes SET refreshed_at = now() - interval '6 minutes' WHERE view_name = 'analytics_dashboard'")
    started = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    run = refresh(db_url, if_older_than="5m")
    assert run.result is not None
    assert list(run.result["refreshed"]) == ["public.analytics_dashboard"]
    assert run.result["refreshed"]["public.analytics_dashboard"]["mode"] == "concurrently"
    assert len(run.result["skipped"]) == 2
    # stamped by this run: at or after the instant the test read just before it
    stamped = conn.execute(
        "SELECT refreshed_at >= %s, refresh_mode FROM trackschema.matview_refreshes WHERE view_name = 'analytics_dashboard'", (started,)
    ).fetchone()
    assert stamped == (True, "concurrently")
    bad = run_cli("jobs", "run", "refresh-matviews", "--if-older-than", "soon", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert bad.returncode == 2 and "bad --if-older-than 'soon'" in bad.stderr


def test_unpopulated_view_gets_a_full_refresh(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("REFRESH MATERIALIZED VIEW dashboard_statistics WITH NO DATA")
    run = refresh(db_url, if_older_than="1h")
    assert run.result is not None and run.result["refreshed"]["public.dashboard_statistics"]["mode"] == "full"
    assert conn.execute("SELECT relispopulated FROM pg_class WHERE oid = 'dashboard_statistics'::regclass").fetchone() == (True,)


def test_a_failing_view_is_recorded_the_others_refreshed_and_exit_1(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE MATERIALIZED VIEW no_key_view AS SELECT status, count(*) AS n FROM roadmap_items GROUP BY status")
    conn.execute("INSERT INTO trackschema.matview_refreshes (schema_name, view_name, refreshed_at) VALUES ('public', 'no_key_view', now() - interval '1 day')")
    out = run_cli("jobs", "run", "refresh-matviews", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert out.returncode == 1
    assert "public.no_key_view" in out.stderr and "concurrently" in out.stderr and "Traceback" not in out.stderr
    status, error = conn.execute("SELECT status, error FROM trackschema.job_runs ORDER BY id DESC LIMIT 1").fetchone()  # type: ignore[misc]
    assert status == "failed" and "no_key_view" in error
    recorded = dict(conn.execute("SELECT view_name, last_error IS NOT NULL FROM trackschema.matview_refreshes").fetchall())
    assert recorded == {"no_key_view": True, "analytics_dashboard": False, "contact_management_view": False, "dashboard_statistics": False}
    modes = dict(conn.execute("SELECT view_name, refresh_mode FROM trackschema.matview_refreshes WHERE view_name <> 'no_key_view'").fetchall())
    assert set(modes.values()) == {"concurrently"}
    # status names the problem
    by_view = {m.view: m for m in matviews.matview_status(conn)}
    assert by_view["public.no_key_view"].concurrent_key is None and by_view["public.no_key_view"].last_error
    # the SQL entry point (what pg_cron runs) records the failure and raises
    with pytest.raises(psycopg.errors.RaiseException, match="no_key_view"):
        conn.execute("CALL trackschema.refresh_matviews()")
    assert conn.execute("SELECT status FROM trackschema.job_runs ORDER BY id DESC LIMIT 1").fetchone() == ("failed",)


def test_sql_entry_points_record_runs_like_the_cli(db_url: str, conn: psycopg.Connection) -> None:
    assert conn.execute("CALL trackschema.refresh_matviews()").fetchone() is not None
    conn.execute("CALL trackschema.run_job_sql('analyze-planner', 'ANALYZE roadmap_items')")
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("CALL trackschema.run_job_sql('divide', 'SELECT 1/0')")
    runs = conn.execute("SELECT job, status, error, params->>'via' FROM trackschema.job_runs ORDER BY id").fetchall()
    assert runs == [
        ("refresh-matviews", "succeeded", None, "sql"),
        ("analyze-planner", "succeeded", None, "sql"),
        ("divide", "failed", "22012: division by zero", "sql"),
    ]
    # no advisory lock is left behind by this session
    assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()").fetchone() == (0,)
    history = jobs.history(make_settings(db_url))
    assert [r.job for r in history] == ["divide", "analyze-planner", "refresh-matviews"]


def test_status_shows_each_view_with_last_refresh_and_age(db_url: str, conn: psycopg.Connection) -> None:
    """Ages are checked against instants of the server's clock read around each call, so
    the expected range is exact however long the calls take."""

    def clock() -> datetime:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]

    def since(a: datetime, b: datetime) -> float:
        return (b - a).total_seconds()

    conn.execute("UPDATE trackschema.matview_refreshes SET refreshed_at = now() - interval '2 hours'")
    refresh_started = clock()
    refresh(db_url, if_older_than="1h")
    aged_at = conn.execute(
        "UPDATE trackschema.matview_refreshes SET refreshed_at = now() - interval '10 minutes' WHERE view_name = 'dashboard_statistics' RETURNING now()"
    ).fetchone()[0]  # type: ignore[index]
    with psycopg.connect(db_url, autocommit=True) as c:
        asked = clock()
        views = {v.view: v for v in matviews.matview_status(c)}
        answered = clock()
    assert set(views) == {f"public.{v}" for v in VIEWS}
    stats = views["public.dashboard_statistics"]
    assert stats.registered and stats.populated and stats.concurrent_key == "dashboard_statistics_key"
    # 600 s old at `aged_at`, read between `asked` and `answered`
    assert stats.age_seconds is not None and 600 + since(aged_at, asked) <= stats.age_seconds <= 600 + since(aged_at, answered)
    # refreshed by the run above: not older than that run
    assert 0 <= views["public.analytics_dashboard"].age_seconds <= since(refresh_started, answered)  # type: ignore[operator]
    asked = clock()
    out = run_cli("status", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    answered = clock()
    assert out.returncode == 0, out.stderr
    # shown as whole minutes and seconds: "10m 00s" onwards, the minute the CLI read the clock in
    minutes = range(int((600 + since(aged_at, asked)) // 60), int((600 + since(aged_at, answered)) // 60) + 1)
    assert "Materialized views" in out.stdout and "public.dashboard_statistics" in out.stdout
    assert any(f"{m}m" in out.stdout for m in minutes), out.stdout
    asked = clock()
    page = json.loads(run_cli("status", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url}).stdout)
    listed = {m["view"]: m for m in page["matviews"]}
    assert listed["public.dashboard_statistics"]["age_seconds"] >= 600 + since(aged_at, asked) and listed["public.dashboard_statistics"]["refreshed_at"]


def test_jobs_list_shows_refresh_matviews_with_its_sql_entry_point(db_url: str, conn: psycopg.Connection) -> None:
    before = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    refresh(db_url)
    after = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    out = run_cli("jobs", "list", "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert out.returncode == 0, out.stderr
    listed = {j["name"]: j for j in json.loads(out.stdout)}
    entry = listed["refresh-matviews"]
    assert entry["schedule"] == "*/5 * * * *" and entry["last_status"] == "succeeded"
    assert entry["sql"] == 'CALL "trackschema"."refresh_matviews"(NULL)'
    assert before <= datetime.fromisoformat(entry["last_run"]) <= after  # the run above, by the server's clock
    assert {"name", "schedule", "last_run", "last_status"} <= set(entry)


# --- the revision: round trip and offline SQL ---------------------------------------------


def _schema_dump(url: str) -> str:
    from trackschema.runtime.provision import find_pg_bindir

    bindir = find_pg_bindir()
    pg_dump = str(bindir / "pg_dump") if bindir else "pg_dump"
    out = subprocess.run([pg_dump, "--schema-only", "--no-owner", url], capture_output=True, text=True, check=True)
    # (\restrict carries a random key per dump)
    return "\n".join(line for line in out.stdout.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))


def test_downgrade_removes_everything_and_upgrade_restores_the_same_schema(db_url: str, conn: psycopg.Connection) -> None:
    settings = make_settings(db_url)
    at_head = _schema_dump(db_url)
    migrate.downgrade(settings, "0001_core_schema")
    leftovers = conn.execute(
        """SELECT (SELECT count(*) FROM pg_class WHERE relkind = 'm'),
                  (SELECT count(*) FROM pg_proc WHERE pronamespace = 'trackschema'::regnamespace),
                  to_regclass('trackschema.matview_refreshes')"""
    ).fetchone()
    assert leftovers == (0, 0, None)
    migrate.upgrade(settings, "head")
    assert _schema_dump(db_url) == at_head


def test_offline_sql_applies_with_psql(empty_db_url: str) -> None:
    script = run_cli("upgrade", "head", "--sql", env={"TRACKSCHEMA_DATABASE_URL": empty_db_url})
    assert script.returncode == 0, script.stderr
    from trackschema.runtime.provision import find_pg_bindir

    bindir = find_pg_bindir()
    psql = str(bindir / "psql") if bindir else "psql"
    applied = subprocess.run([psql, "-v", "ON_ERROR_STOP=1", "-q", "-d", empty_db_url], input=script.stdout, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM trackschema.matview_refreshes").fetchone() == (3,)
        conn.execute("CALL trackschema.refresh_matviews()")
        assert conn.execute("SELECT count(*) FROM pg_matviews WHERE ispopulated").fetchone() == (3,)


def test_refresh_before_the_revision_says_what_to_do(db_url: str) -> None:
    migrate.downgrade(make_settings(db_url), "0001_core_schema")
    out = run_cli("jobs", "run", "refresh-matviews", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert out.returncode == 2 and "run `trackschema upgrade head`" in out.stderr and "Traceback" not in out.stderr
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT status FROM trackschema.job_runs").fetchall() == [("failed",)]
