"""The released promotion revisions 0020–0023 are pinned: editing the live declarations
or expressions does not change the SQL they emit (offline `--sql`, both directions). The live declarations still agree with what those revisions created."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from tests.conftest import make_settings
from trackschema.migrations import runner as migrate
from trackschema.promotions import declarations, expressions, released_2026_11

BEFORE = "0014_legacy_analytics_move"
CONTRACT = "0023_promotion_contract"


def promotion_revisions_sql() -> str:
    """Offline SQL of 0020–0023: upgrade 0014 → 0023, then downgrade 0023 → 0014."""
    settings = make_settings(None)
    up = migrate.upgrade(settings, f"{BEFORE}:{CONTRACT}", sql=True).sql or ""
    down = migrate.downgrade(settings, f"{CONTRACT}:{BEFORE}", sql=True).sql or ""
    return up + down


def _explode(*args: object, **kwargs: object) -> None:
    raise AssertionError("a released revision called the live promotion code")


def _break_live_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Edit the live modules the way later work might: a changed, a removed and an added
    declaration, a renamed trigger, and every function the live modules define gone. (The
    Promotion class and the shared fragments are the frozen module's own: an edit of them
    is an edit of a released file, which tests/migrations/test_released_history.py catches.)"""
    first, second, third = declarations.PROMOTIONS
    changed = (
        dataclasses.replace(first, allowed=("guardrails", "trip", "planner", "mobile"), index="idx_changed"),
        dataclasses.replace(third, column="itinerary_ref", sql_type="text"),
        declarations.Promotion(name="added", table="context_events", json_column="metadata", json_key="added",
                               column="added_col", sql_type="uuid", index="idx_added"),
    )
    assert second not in changed
    monkeypatch.setattr(declarations, "PROMOTIONS", changed)
    monkeypatch.setattr(declarations, "DUAL_WRITE_TRIGGERS", {"context_events": "renamed_trigger"})
    for module in (declarations, expressions):
        for name, obj in list(vars(module).items()):
            if inspect.isfunction(obj) and obj.__module__ == module.__name__:
                monkeypatch.setattr(module, name, _explode)


def test_edited_live_promotion_code_does_not_change_the_released_revisions(monkeypatch: pytest.MonkeyPatch) -> None:
    released = promotion_revisions_sql()
    assert "ADD COLUMN \"source_type\" text" in released and "context_events_source_roadmap_item_id_in_step" in released
    _break_live_modules(monkeypatch)
    assert promotion_revisions_sql() == released


def test_frozen_declarations_are_self_contained() -> None:
    """The frozen module defines its own declaration classes and SQL builders."""
    for p in released_2026_11.PROMOTIONS:
        assert type(p) is released_2026_11.Promotion
        assert p.reference is None or type(p.reference) is released_2026_11.Reference
    source = inspect.getsource(released_2026_11)
    assert "trackschema.promotions" not in source.split('"""', 2)[2]  # nothing imported from the live modules


def _fields(p: object) -> dict[str, object]:
    values = dataclasses.asdict(p)  # type: ignore[call-overload]
    values.pop("description")
    return values


def test_live_declarations_agree_with_what_the_released_revisions_created() -> None:
    """Backfill, progress and status read the live declarations against a database that
    0020–0023 built from the frozen ones: a released promotion changed in place would make
    them disagree (a backfill writing values the CHECK refuses, a status looking for
    constraints that do not exist). Change a rule with a new declaration and revision."""
    live = {p.name: p for p in declarations.PROMOTIONS}
    for frozen in released_2026_11.PROMOTIONS:
        assert frozen.name in live, f"released promotion {frozen.name} was removed from declarations.PROMOTIONS"
        current = live[frozen.name]
        assert _fields(current) == _fields(frozen), (
            f"released promotion {frozen.name} changed in declarations.py: declare a new promotion and revision instead"
        )
        for name in ("check_constraint", "foreign_key", "in_step_constraint", "source"):
            assert getattr(current, name) == getattr(frozen, name), f"{frozen.name}.{name}"
    assert declarations.DUAL_WRITE_TRIGGERS == released_2026_11.DUAL_WRITE_TRIGGERS
