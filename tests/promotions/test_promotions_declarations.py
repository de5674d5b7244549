"""Declarations, the SQL expressions built from them, and the promotion helper functions."""

from __future__ import annotations

import random
import re
import uuid

import psycopg
import pytest

from trackschema.promotions import declarations
from trackschema.promotions.declarations import PROMOTIONS, UnknownPromotion
from trackschema.runtime.settings import project_root


def test_lookup_by_column_table_column_or_key() -> None:
    assert declarations.get("source_type") is declarations.get("context_events.source_type") is declarations.get("source")
    assert [p.name for p in declarations.select(["source_itinerary_item_id", "source"])] == ["source_type", "source_itinerary_item_id"]
    assert declarations.select(None) == list(PROMOTIONS)
    with pytest.raises(UnknownPromotion, match="choose one of source_type, source_roadmap_item_id, source_itinerary_item_id"):
        declarations.get("source_kind")


def test_the_dual_write_functions_agree_with_the_declarations() -> None:
    """Every declared key, column and allowed value appears in both function versions, and
    nothing undeclared does."""
    for version in (1, 2):
        text = (project_root() / "sql" / "functions" / f"context_events_promote_metadata.v{version}.sql").read_text()
        body = text.split("AS $fn$", 1)[1]
        for p in PROMOTIONS:
            assert f"NEW.metadata -> '{p.json_key}'" in body and f"NEW.{p.column}" in body
            if p.allowed:
                assert "'{" + ",".join(p.allowed) + "}'::text[]" in body
        assert set(re.findall(r"NEW\.(source_\w+)", body)) == {p.column for p in PROMOTIONS}
        assert ("FROM roadmap_items" in body) == (version == 2)


def test_uuid_promotion_never_raises_and_agrees_with_the_uuid_type(conn: psycopg.Connection) -> None:
    rnd = random.Random(7)
    samples: list[str] = []
    for _ in range(400):
        u = str(uuid.uuid4())
        form = rnd.choice([u, u.upper(), u.replace("-", ""), "{" + u + "}", u[:-1], u + "0", u.replace("-", "", 1), u[:8] + "g" + u[9:],
                           u.replace("-", "--", 1), " " + u, u[:20], ""])
        samples.append(form)
    rows = conn.execute(
        "SELECT s, jsonb_promote_uuid(to_jsonb(s)) FROM unnest(%s::text[]) s", (samples,)
    ).fetchall()
    for text, promoted in rows:
        if promoted is not None:
            assert promoted == uuid.UUID(text.strip("{}"))
        canonical = re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}", text)
        assert (promoted is not None) == bool(canonical), text
    for value in ("12", "null", "true", '{"a": 1}', '["0190a3c4-1111-7222-8333-444455556666"]'):
        assert conn.execute("SELECT jsonb_promote_uuid(%s::jsonb), jsonb_promotion_problem(%s::jsonb, 'uuid')", (value, value)).fetchone()[0] is None  # type: ignore[index]


def test_text_promotion_and_problems(conn: psycopg.Connection) -> None:
    allowed = ["guardrails", "trip", "planner"]
    cases = {
        '"trip"': ("trip", None),
        '"Trip"': (None, 'not an allowed value: "Trip" (allowed: guardrails, trip, planner)'),
        "5": (None, "expected a JSON string, got number 5"),
        '{"x": 1}': (None, 'expected a JSON string, got object {"x": 1}'),
        "null": (None, None),
    }
    for value, expected in cases.items():
        got = conn.execute("SELECT jsonb_promote_text(%s::jsonb, %s), jsonb_promotion_problem(%s::jsonb, 'text', %s)",
                           (value, allowed, value, allowed)).fetchone()
        assert got == expected, value
