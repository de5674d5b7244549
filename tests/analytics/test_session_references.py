"""Revision 0102: the page views' and clicks' session references, enforced by triggers with
the semantics of the foreign keys they replace (docs/design.md#ingest): checked per
statement, locked FOR KEY SHARE, cascaded on delete, NO ACTION on key update, TRUNCATE
refused while referenced, and the foreign keys back, exactly, on downgrade."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest

from tests.conftest import make_settings
from tests.observe import wait_until
from trackschema.errors import RevisionError
from trackschema.migrations import runner as migrate
from trackschema.testing.databases import Template

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
FK_DEF = "FOREIGN KEY (session_id) REFERENCES analytics_sessions(session_id) ON DELETE CASCADE"


def _sessions(conn: psycopg.Connection, *ids: str) -> None:
    for sid in ids:
        conn.execute("INSERT INTO analytics_sessions (session_id, user_code, first_seen, last_seen) VALUES (%s, 'u', %s, %s)",
                     (sid, AT, AT))


def _view(conn: psycopg.Connection, *sids: str) -> None:
    conn.execute("INSERT INTO analytics_page_views (session_id, user_code, page_type, viewed_at) "
                 "SELECT s, 'u', 'home', %s FROM unnest(%s::text[]) AS s", (AT, list(sids)))


def _count(conn: psycopg.Connection, table: str, sid: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table} WHERE session_id = %s", (sid,)).fetchone()[0]


def _waiting_on_lock(observer: psycopg.Connection, pid: int) -> Callable[[], bool]:
    return lambda: observer.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == (True,)


def test_an_insert_naming_missing_sessions_is_refused_whole(conn: psycopg.Connection) -> None:
    conn.autocommit = True
    _sessions(conn, "s1")
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
        _view(conn, "s1", "zz", "mm", "zz")
    diag = refused.value.diag
    assert diag.message_primary is not None
    assert '"analytics_page_views"' in diag.message_primary and '"mm"' in diag.message_primary and "(2 missing)" in diag.message_primary
    assert (diag.table_name, diag.column_name) == ("analytics_page_views", "session_id")
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match='table "analytics_clicks".*session_id "gone"'):
        conn.execute("INSERT INTO analytics_clicks (session_id, user_code, click_target, clicked_at) VALUES ('gone', 'u', 'x', %s)", (AT,))
    assert _count(conn, "analytics_page_views", "s1") == 0  # the statement was undone, the valid row too
    _view(conn, "s1", "s1")
    assert _count(conn, "analytics_page_views", "s1") == 2
    assert conn.execute("SELECT page_views FROM analytics_sessions WHERE session_id = 's1'").fetchone() == (2,)


def test_a_key_change_is_checked_both_ways(conn: psycopg.Connection) -> None:
    conn.autocommit = True
    _sessions(conn, "a", "b")
    _view(conn, "a")
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match='session_id "nope"'):
        conn.execute("UPDATE analytics_page_views SET session_id = 'nope'")
    conn.execute("UPDATE analytics_page_views SET session_id = 'b'")  # to an existing session: fine
    conn.execute("UPDATE analytics_page_views SET page_type = 'other'")  # key unchanged: no check
    # NO ACTION: a referenced key may not go away, an unreferenced one may change
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match='"analytics_page_views".*session_id "b" is still referenced'):
        conn.execute("UPDATE analytics_sessions SET session_id = 'c' WHERE session_id = 'b'")
    conn.execute("UPDATE analytics_sessions SET session_id = 'c' WHERE session_id = 'a'")
    assert conn.execute("SELECT session_id FROM analytics_sessions ORDER BY 1").fetchall() == [("b",), ("c",)]
    assert conn.execute("SELECT session_id FROM analytics_page_views").fetchall() == [("b",)]


def test_a_session_delete_cascades_set_based(conn: psycopg.Connection) -> None:
    conn.autocommit = True
    _sessions(conn, "d1", "d2", "keep")
    _view(conn, "d1", "d1", "d2", "keep")
    conn.execute("INSERT INTO analytics_clicks (session_id, user_code, click_target, clicked_at) "
                 "SELECT s, 'u', 'x', %s FROM unnest(ARRAY['d1', 'd2', 'keep']) AS s", (AT,))
    assert conn.execute("DELETE FROM analytics_sessions WHERE session_id IN ('d1', 'd2')").rowcount == 2
    assert conn.execute("SELECT session_id, count(*) FROM analytics_page_views GROUP BY 1").fetchall() == [("keep", 1)]
    assert conn.execute("SELECT session_id, count(*) FROM analytics_clicks GROUP BY 1").fetchall() == [("keep", 1)]


def test_truncate_of_sessions_needs_the_children_empty_or_truncated_with_it(conn: psycopg.Connection) -> None:
    conn.autocommit = True
    _sessions(conn, "t1")
    _view(conn, "t1")
    for statement in ("TRUNCATE analytics_sessions", "TRUNCATE analytics_sessions CASCADE"):
        with pytest.raises(psycopg.errors.FeatureNotSupported, match='"analytics_page_views" references it'):
            conn.execute(statement)
    assert _count(conn, "analytics_page_views", "t1") == 1
    conn.execute("TRUNCATE analytics_sessions, analytics_page_views, analytics_clicks")
    assert conn.execute("SELECT (SELECT count(*) FROM analytics_sessions) + (SELECT count(*) FROM analytics_page_views)").fetchone() == (0,)
    _sessions(conn, "t2")
    conn.execute("TRUNCATE analytics_sessions")  # no page view or click: nothing references it
    assert conn.execute("SELECT count(*) FROM analytics_sessions").fetchone() == (0,)


def test_an_insert_waiting_on_a_deleted_session_fails_once_the_delete_commits(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as setup:
        _sessions(setup, "race")
    with psycopg.connect(db_url) as deleter, psycopg.connect(db_url) as inserter, psycopg.connect(db_url, autocommit=True) as observer:
        deleter.execute("DELETE FROM analytics_sessions WHERE session_id = 'race'")  # uncommitted
        outcome: list[BaseException | None] = []

        def insert() -> None:
            try:
                _view(inserter, "race")
                inserter.commit()
                outcome.append(None)
            except psycopg.Error as exc:
                inserter.rollback()
                outcome.append(exc)

        thread = threading.Thread(target=insert)
        thread.start()
        wait_until(_waiting_on_lock(observer, inserter.info.backend_pid), "the insert's FOR KEY SHARE to wait for the delete")
        deleter.commit()
        thread.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], psycopg.errors.ForeignKeyViolation), outcome
        assert _count(observer, "analytics_page_views", "race") == 0


def test_a_delete_waiting_on_an_insert_cascades_its_rows(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as setup:
        _sessions(setup, "race")
    with psycopg.connect(db_url) as inserter, psycopg.connect(db_url) as deleter, psycopg.connect(db_url, autocommit=True) as observer:
        _view(inserter, "race", "race")  # uncommitted; the session is locked FOR KEY SHARE (and its counter raised)
        deleted: list[int] = []
        thread = threading.Thread(target=lambda: (deleted.append(deleter.execute(
            "DELETE FROM analytics_sessions WHERE session_id = 'race'").rowcount), deleter.commit()))
        thread.start()
        wait_until(_waiting_on_lock(observer, deleter.info.backend_pid), "the delete to wait for the insert's lock")
        inserter.commit()
        thread.join(60)
        assert deleted == [1]
        assert _count(observer, "analytics_page_views", "race") == 0  # the new rows went with their session: no orphan


def test_a_repeatable_read_delete_that_cannot_see_new_rows_fails_instead_of_orphaning_them(db_url: str) -> None:
    """Under REPEATABLE READ the cascade's snapshot cannot see rows committed after it; the
    insert updated the session row too (its counter), so the DELETE fails, as the key's
    cascade did, instead of leaving them."""
    with psycopg.connect(db_url, autocommit=True) as setup:
        _sessions(setup, "rr")
    with psycopg.connect(db_url) as deleter, psycopg.connect(db_url, autocommit=True) as inserter:
        deleter.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        assert deleter.execute("SELECT count(*) FROM analytics_page_views WHERE session_id = 'rr'").fetchone() == (0,)  # the snapshot
        _view(inserter, "rr")
        with pytest.raises(psycopg.errors.SerializationFailure):
            deleter.execute("DELETE FROM analytics_sessions WHERE session_id = 'rr'")
        deleter.rollback()
        assert _count(inserter, "analytics_page_views", "rr") == 1


def test_downgrade_restores_the_foreign_keys_exactly_and_refuses_orphans(db_url: str) -> None:
    settings = make_settings(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        _sessions(conn, "ok")
        _view(conn, "ok")
        with conn.transaction():  # only writes that bypass the triggers can leave an orphan
            conn.execute("SET LOCAL session_replication_role = replica")
            _view(conn, "orphan-b", "orphan-a")
    with pytest.raises(RevisionError, match=r"analytics_page_views has 2 rows whose session is missing \(first session_id: orphan-a\)"
                                            r".*the database is now at 0102_analytics_session_check, was at ") as refused:
        migrate.downgrade(settings, "0101_citus_analytics")
    assert refused.value.args[0].endswith(f"was at {migrate.heads()[0].revision})")
    triggers = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%check_session%' OR tgname LIKE 'analytics_sessions_%'"
    keys = "SELECT conrelid::regclass::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE contype = 'f' AND confrelid = 'analytics_sessions'::regclass ORDER BY 1"
    with psycopg.connect(db_url, autocommit=True) as conn:
        # the revisions above 0102 (catalog only) ran; 0102 refused and changed nothing
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0102_analytics_session_check",)
        assert conn.execute(keys).fetchall() == []
        with_triggers = conn.execute(triggers).fetchone()[0]
        assert with_triggers == 9  # 2 x 2 on page views and clicks, 3 of 0102 + 2 mark-days on sessions
        conn.execute("DELETE FROM analytics_page_views WHERE session_id LIKE 'orphan-%'")
    migrate.downgrade(settings, "0101_citus_analytics")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(keys).fetchall() == [("analytics_clicks", FK_DEF, True), ("analytics_page_views", FK_DEF, True)]
        assert conn.execute(triggers).fetchone()[0] == 2  # the mark-days triggers of 0011 only
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname IN ('analytics_session_refs_check', 'analytics_sessions_delete_children', "
                            "'analytics_sessions_key_in_use', 'analytics_sessions_truncate_check')").fetchone() == (0,)
    migrate.upgrade(settings, "head")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(keys).fetchall() == []
        assert conn.execute(triggers).fetchone()[0] == with_triggers
        assert _count(conn, "analytics_page_views", "ok") == 1


def test_plan_sample_brings_a_page_views_session_along(db_url: str, trackschema_template: Template) -> None:
    """`trackschema plan` samples a table and the rows it references: the session references
    are no foreign keys since 0102, so it reads them from trackschema.trigger_references, and
    the sampled page views land with their sessions (the check trigger would refuse them
    otherwise, and a rehearsed downgrade of 0102 would find orphans)."""
    from trackschema.migrations.plan.sample import copy_sample

    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT table_name, referenced_table FROM trackschema.trigger_references ORDER BY 1").fetchall() == [
            ("public.analytics_clicks", "public.analytics_sessions"), ("public.analytics_page_views", "public.analytics_sessions")]
        _sessions(conn, "plan-s1", "plan-s2", "plan-s3")
        _view(conn, "plan-s1", "plan-s2", "plan-s3", "plan-s1")
    scratch = trackschema_template.clone("trackschema_test_plan_sample")
    try:
        warnings: list[str] = []
        copied = copy_sample(make_settings(db_url), scratch.url, "analytics_page_views", 10, warnings)
        assert copied.get("public.analytics_page_views", copied.get("analytics_page_views")) == 4, copied
        with psycopg.connect(scratch.url) as conn:
            assert conn.execute("SELECT count(*) FROM analytics_sessions WHERE session_id LIKE 'plan-s%'").fetchone() == (3,)
            assert conn.execute("""SELECT count(*) FROM analytics_page_views v
                                    WHERE NOT EXISTS (SELECT 1 FROM analytics_sessions s WHERE s.session_id = v.session_id)""").fetchone() == (0,)
    finally:
        trackschema_template.admin.drop("trackschema_test_plan_sample")
