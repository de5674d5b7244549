"""The core schema as the catalog sees it."""

from __future__ import annotations

import uuid

import psycopg

CORE_TABLES = {
    "entity_types", "entities", "contacts", "addresses", "address_contacts", "entity_touchpoints",
    "entity_relationships", "activity_log", "entity_events", "entity_achievements", "goal_events",
    "analytics_sessions", "analytics_page_views", "analytics_clicks", "analytics_events",
    "roadmap_items", "context_events", "calendar_events", "calendar_projections",
}


def test_core_tables_and_bookkeeping_schema_exist(conn: psycopg.Connection) -> None:
    tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()}
    assert CORE_TABLES <= tables
    assert conn.execute("SELECT to_regclass('trackschema.job_runs') IS NOT NULL").fetchone() == (True,)


def test_no_timestamp_without_time_zone(conn: psycopg.Connection) -> None:
    naive = conn.execute(
        """SELECT table_schema || '.' || table_name || '.' || column_name FROM information_schema.columns
            WHERE table_schema IN ('public', 'trackschema') AND data_type = 'timestamp without time zone'"""
    ).fetchall()
    assert naive == []


def test_uuid_keys_are_time_ordered_version_7(conn: psycopg.Connection) -> None:
    ids = [row[0] for row in conn.execute("SELECT uuid_generate_v7() FROM generate_series(1, 2000)").fetchall()]
    assert all(isinstance(i, uuid.UUID) and i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)
    millis = [int.from_bytes(i.bytes[:6], "big") for i in ids]
    assert millis == sorted(millis)
    default = conn.execute(
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'entities' AND column_name = 'id'"
    ).fetchone()
    assert default == ("uuid_generate_v7()",)


def test_seed_composite_indexes_exist(conn: psycopg.Connection) -> None:
    indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'").fetchall())
    expected = {
        "idx_sessions_user_code_first_seen": "(user_code, first_seen DESC)",
        "idx_page_views_user_code_viewed_at": "(user_code, viewed_at DESC)",
        "idx_clicks_user_code_clicked_at": "(user_code, clicked_at DESC)",
        "idx_activity_log_user_time": "(user_id, occurred_at DESC)",
        "idx_activity_log_action_time": "(action, occurred_at DESC)",
    }
    for name, columns in expected.items():
        assert name in indexes and columns in indexes[name], name


def test_foreign_keys_have_supporting_indexes(conn: psycopg.Connection) -> None:
    """Every FK's columns lead some index, so parent deletes do not scan the child."""
    missing = conn.execute(
        """SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c
            WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
              AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid
                              AND (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] = c.conkey)"""
    ).fetchall()
    assert missing == []
