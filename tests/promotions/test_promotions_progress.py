"""`trackschema backfill progress|rejects|run` and the promotions section of `status`, as a
user runs them: JSON keys, NULL rates, the --fail-above gate, one-line errors."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.conftest import make_settings, run_cli
from tests.promotion_helpers import BAD_VALUES, econn, expanded_db_url, expanded_template, load_legacy_rows  # noqa: F401
from trackschema.migrations import runner as migrate
from trackschema.errors import TrackschemaError
from trackschema.promotions import backfill, progress
from trackschema.promotions.backfill import BackfillOptions


def test_progress_json_counts_and_the_fail_above_gate(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 2_000)
    env = {"TRACKSCHEMA_DATABASE_URL": expanded_db_url}
    before = run_cli("backfill", "progress", "--json", "--fail-above", "1%", env=env)
    assert before.returncode == 1
    assert before.stderr.strip().count("\n") == 0 and "NULL rate above 1.00%" in before.stderr
    rows = json.loads(before.stdout)
    assert [list(r) for r in rows] == [["name", "table", "column", "eligible", "filled", "rejected", "null_rate"]] * 3
    assert rows[0] == {"name": "source_type", "table": "context_events", "column": "source_type",
                       "eligible": 1_503, "filled": 0, "rejected": 0, "null_rate": 1.0}

    backfill.run(make_settings(expanded_db_url), None, BackfillOptions(batch_time=0.05))
    after = run_cli("backfill", "progress", "source_type", "source_roadmap_item_id", "--json", "--fail-above", "0", env=env)
    assert after.returncode == 0, after.stderr
    by_name = {r["name"]: r for r in json.loads(after.stdout)}
    assert set(by_name) == {"source_type", "source_roadmap_item_id"}
    assert by_name["source_type"] == {"name": "source_type", "table": "context_events", "column": "source_type",
                                      "eligible": 1_503, "filled": 1_500, "rejected": 3, "null_rate": 0.0}
    assert by_name["source_roadmap_item_id"]["rejected"] == 1 and by_name["source_roadmap_item_id"]["filled"] == 500

    human = run_cli("backfill", "progress", env=env)
    assert human.returncode == 0 and "NULL rate" in human.stdout and "source_itinerary_item_id" in human.stdout


def test_rejects_lists_the_reasons(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 100)
    backfill.run(make_settings(expanded_db_url), None, BackfillOptions(batch_time=0.05))
    env = {"TRACKSCHEMA_DATABASE_URL": expanded_db_url}
    listed = run_cli("backfill", "rejects", "source_type", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    got = {json.dumps(r["value"]): r["reason"] for r in json.loads(listed.stdout)}
    expected = {json.dumps(md["source"]): reason for md, promotion, reason in BAD_VALUES if promotion == "source_type"}
    assert set(got) == set(expected) and all(expected[v] in got[v] for v in got)
    human = run_cli("backfill", "rejects", "source_itinerary_item_id", env=env)
    assert human.returncode == 0 and "not a uuid" in human.stdout and "expected a JSON string, got number" in human.stdout
    unknown = run_cli("backfill", "rejects", "nope", env=env)
    assert unknown.returncode == 2 and "unknown promotion 'nope'" in unknown.stderr and unknown.stderr.count("\n") == 1


def test_backfill_run_prints_a_bar_and_a_summary(expanded_db_url: str, econn: psycopg.Connection) -> None:
    load_legacy_rows(econn, 400)
    result = run_cli("backfill", "run", "source_type", "--batch-time", "20ms", env={"TRACKSCHEMA_DATABASE_URL": expanded_db_url})
    assert result.returncode == 0, result.stderr
    assert "303/303 rows" in result.stdout and "0 to go" in result.stdout
    assert "context_events: completed — 303 rows done" in result.stdout and "3 with a value that cannot be promoted" in result.stdout
    status = run_cli("status", env={"TRACKSCHEMA_DATABASE_URL": expanded_db_url})
    assert status.returncode == 0 and "Promotions" in status.stdout and "backfilled" in status.stdout and "expanded" in status.stdout


def test_before_expand_the_commands_say_what_to_run(empty_db_url: str) -> None:
    migrate.upgrade(make_settings(empty_db_url), "0001_core_schema")
    env = {"TRACKSCHEMA_DATABASE_URL": empty_db_url}
    for args in (("backfill", "progress"), ("backfill", "run")):
        result = run_cli(*args, env=env)
        assert result.returncode == 2 and result.stderr.count("\n") == 1
        assert "0020_promotion_expand" in result.stderr


def test_parse_rate() -> None:
    assert progress.parse_rate("1%") == pytest.approx(0.01)
    assert progress.parse_rate("0.05") == pytest.approx(0.05)
    assert progress.parse_rate("0") == 0.0
    for bad in ("5", "abc", "-1%", "150%"):
        with pytest.raises(TrackschemaError, match="fraction from 0 to 1"):
            progress.parse_rate(bad)
