"""Fixtures and helpers for the promotion tests (imported by tests/test_promotions_*.py).

`expanded_db_url`: a private database at 0020_promotion_expand (columns + dual-write), cloned
from the plugin's template at that revision (`trackschema_templates.at(EXPAND)`), migrated
once per session. `load_legacy_rows` writes context_events rows the way they existed
before the expand revision: JSON only, the dual-write trigger off.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from trackschema.promotions import expressions as ex
from trackschema.promotions.declarations import PROMOTIONS
from trackschema.testing.databases import Template, Templates

EXPAND = "0020_promotion_expand"
VALIDATE = "0021_promotion_validate"
SWITCH = "0022_promotion_switch"
CONTRACT = "0023_promotion_contract"


@pytest.fixture(scope="session")
def expanded_template(trackschema_templates: Templates) -> Template:
    """The plugin's template at the expand revision (built on first use, rebuilt when the
    server's UTC month changes)."""
    return trackschema_templates.at(EXPAND)


@pytest.fixture
def expanded_db_url(expanded_template: Template) -> Iterator[str]:
    """A database at the expand revision, private to this test."""
    with expanded_template.database("ts_exp") as db:
        yield db.url


@pytest.fixture
def econn(expanded_db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(expanded_db_url, autocommit=True) as connection:
        yield connection


ROADMAP_ITEMS = 50

LEGACY_ROWS = """
WITH ids AS (SELECT array_agg(id ORDER BY id) AS a FROM roadmap_items)
INSERT INTO context_events (context_id, created_by, title, start_at, metadata)
SELECT '00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000a1', 'Event ' || g, now(),
       CASE g %% 4
           WHEN 0 THEN jsonb_build_object('source', 'guardrails', 'roadmap_item_id', ids.a[1 + g %% cardinality(ids.a)])
           WHEN 1 THEN jsonb_build_object('source', 'trip', 'itinerary_item_id', gen_random_uuid())
           WHEN 2 THEN jsonb_build_object('source', 'planner', 'n', g)
           ELSE jsonb_build_object('n', g)
       END
FROM generate_series(1, %(rows)s) AS g, ids
"""


def ensure_roadmap_items(conn: psycopg.Connection, count: int = ROADMAP_ITEMS) -> list[str]:
    have = conn.execute("SELECT count(*) FROM roadmap_items").fetchone()[0]  # type: ignore[index]
    if have < count:
        conn.execute(
            "INSERT INTO roadmap_items (master_project_id, title) SELECT gen_random_uuid(), 'item ' || g FROM generate_series(1, %s) g",
            (count - have,),
        )
    return [str(r[0]) for r in conn.execute("SELECT id FROM roadmap_items ORDER BY id").fetchall()]


def load_legacy_rows(conn: psycopg.Connection, rows: int, *, bad: bool = True) -> int:
    """`rows` JSON-only rows (a quarter each: guardrails + roadmap item, trip + itinerary
    item, planner, no key), written with the dual-write trigger disabled, as rows written
    before expand were; with `bad`, one more row per BAD_VALUES entry. Returns how many
    rows have some key (the rows a backfill has to visit)."""
    ensure_roadmap_items(conn)
    trigger = conn.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'context_events_promote_metadata'").fetchone()
    with conn.transaction():
        if trigger:
            conn.execute("ALTER TABLE context_events DISABLE TRIGGER context_events_promote_metadata")
        conn.execute(LEGACY_ROWS, {"rows": rows})
        if bad:
            conn.execute(BAD_ROWS, BAD_ROWS_PARAMS)
        if trigger:
            conn.execute("ALTER TABLE context_events ENABLE TRIGGER context_events_promote_metadata")
    conn.execute("ANALYZE context_events")
    return rows - rows // 4 + (len(BAD_VALUES) if bad else 0)


# Values that cannot be promoted, and a word the reject reason must contain.
BAD_VALUES = [
    ({"source": "email"}, "source_type", "not an allowed value"),
    ({"source": 5}, "source_type", "expected a JSON string, got number"),
    ({"source": "Trip"}, "source_type", "not an allowed value"),
    ({"roadmap_item_id": "not-a-uuid"}, "source_roadmap_item_id", "not a uuid"),
    ({"itinerary_item_id": 12345}, "source_itinerary_item_id", "expected a JSON string, got number"),
    ({"itinerary_item_id": "{0190a3c4-1111-7222-8333-444455556666}"}, "source_itinerary_item_id", "not a uuid"),
]

BAD_ROWS = sql.SQL("INSERT INTO context_events (context_id, created_by, title, start_at, metadata) VALUES {}").format(sql.SQL(", ").join(
    sql.SQL("('00000000-0000-7000-8000-0000000000c1', '00000000-0000-7000-8000-0000000000a1', 'bad', now(), %s)")
    for _ in BAD_VALUES
))
BAD_ROWS_PARAMS = [__import__("json").dumps(md) for md, _, _ in BAD_VALUES]


def diverged(conn: psycopg.Connection, *, reference_checked: bool = False) -> int:
    """Rows where some promoted column disagrees with its JSON key.

    "Agrees" means the column holds the promoted value, or is NULL because the value
    cannot be promoted (then a reject must exist). Before validate (dual-write version 1)
    references are promoted by form; with `reference_checked` they must also exist.
    """
    disagree = sql.SQL(" OR ").join(
        sql.SQL("({col} IS DISTINCT FROM {val} AND NOT ({col} IS NULL AND {rejected}))").format(
            col=ex.column(p), val=ex.promoted(p) if reference_checked else ex.promoted_value(p), rejected=ex.rejected(p),
        )
        for p in PROMOTIONS
    )
    row = conn.execute(sql.SQL("SELECT count(*) FROM context_events t WHERE {}").format(disagree)).fetchone()
    return int(row[0])  # type: ignore[index]


def unfilled(conn: psycopg.Connection) -> int:
    """Rows with a key, an empty column and no reject (the NULL-rate numerator), summed."""
    parts = sql.SQL(" + ").join(sql.SQL("count(*) FILTER (WHERE {})").format(ex.unfilled(p)) for p in PROMOTIONS)
    return int(conn.execute(sql.SQL("SELECT {} FROM context_events t").format(parts)).fetchone()[0])  # type: ignore[index]


def needing_rows(conn: psycopg.Connection) -> int:
    """Rows the backfill has to visit: some key present with an empty column."""
    cond = sql.SQL(" OR ").join(ex.needs_fill(p) for p in PROMOTIONS)
    return int(conn.execute(sql.SQL("SELECT count(*) FROM context_events t WHERE {}").format(cond)).fetchone()[0])  # type: ignore[index]


UPDATED_AT_STANDIN = """
-- Stand-in for the updated_at trigger of issue 8 and its contract: it does not bump
-- updated_at for writes made with trackschema.maintenance = on.
CREATE FUNCTION test_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('trackschema.maintenance', true), '') = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER update_context_events_updated_at BEFORE UPDATE ON context_events
    FOR EACH ROW EXECUTE FUNCTION test_touch_updated_at();
"""


def limit_inline_fill(conn: psycopg.Connection, rows: int) -> None:
    """Lower the revisions' inline-fill limit for this database, so gate tests need few rows."""
    name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    conn.execute(sql.SQL("ALTER DATABASE {} SET trackschema.inline_fill_limit = {}").format(sql.Identifier(name), sql.Literal(str(rows))))
