"""The operations layer: every wrong input is exit 2, at most three lines naming the
option, the value and what is allowed, and nothing in the database changes."""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg
import pytest

from tests.conftest import run_cli
from trackschema.jobs import registry as jobs
from trackschema.operations.inputs import Count, Day, Duration, InputError, Names, Text
from trackschema.operations.options import Options, cli_label, option

# What a wrong input must leave as it was.
FOOTPRINT = """SELECT (SELECT count(*) FROM trackschema.job_runs),
                      (SELECT count(*) FROM event_queue),
                      (SELECT coalesce(sum(attempts), 0) FROM event_queue),
                      (SELECT count(*) FROM pg_inherits),
                      (SELECT count(*) FROM trackschema.matview_refreshes),
                      (SELECT count(*) FROM analytics_daily_user_stats),
                      (SELECT version_num FROM alembic_version)"""


def footprint(url: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(FOOTPRINT).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize(("kind", "value", "message"), [
    (Duration(), "90", "give a unit, e.g. 90s or 90d"),
    (Duration(), "0s", "give a duration from 1ms to 1d"),
    (Duration(), "-5s", "write a number with ms, s, min, h or d"),
    (Duration(maximum=3600), "2h", "from 1ms to 1h"),
    (Count(1, 100), "0", "give a whole number from 1 to 100"),
    (Count(1, 100), "-3", "give a whole number from 1 to 100"),
    (Count(1, 100), "99999999999999999999999", "give a whole number from 1 to 100"),
    (Count(1, 100), "1.5", "give a whole number"),
    (Day(), "0001-01-01", "give a day from 2000-01-01 to 2999-12-31"),
    (Day(), "2027-02-29", "write a day as YYYY-MM-DD"),
    (Names(("a", "b")), "a,c", "choose among a, b"),
    (Text(10), "x" * 11, "give 1 to 10 printable characters"),
])
def test_each_kind_refuses_what_cannot_be_meant(kind: object, value: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as refused:
        kind.parse("--opt", value)  # type: ignore[attr-defined]
    assert str(refused.value).startswith("bad --opt ")


def test_a_huge_value_is_quoted_short() -> None:
    with pytest.raises(InputError) as refused:
        Count().parse("--limit", "9" * 10_000_000)
    assert len(str(refused.value)) < 200


def test_zero_is_refused_or_means_off_as_declared() -> None:
    assert Duration(zero_allowed=True).parse("--sleep", "0s") == 0.0
    assert Duration().parse("--lock-timeout", "500ms") == 0.5
    assert Duration().parse("--lock-timeout", "10min") == 600


@dataclass(frozen=True)
class Sample(Options):
    operation = "sample"
    batch_size: int = option(Count(1, 10), 5, "Rows per batch.")
    older_than: float = option(Duration(minimum=1, maximum=86400), 60.0, "Age.")


def test_options_are_declared_once_parsed_with_defaults_and_unknown_keys_refused() -> None:
    assert Sample.from_params({}) == Sample()
    assert Sample.from_params({"batch_size": "7", "older_than": "2h"}) == Sample(batch_size=7, older_than=7200.0)
    with pytest.raises(InputError, match=r"unknown parameter --param batchsize for sample: its parameters are batch_size, older_than"):
        Sample.from_params({"batchsize": "7"})
    with pytest.raises(InputError, match=r"bad --batch-size '11': give a whole number from 1 to 10"):
        Sample.from_params({"batch_size": 11}, label=cli_label)
    assert [name for name, _, _ in Sample.describe()] == ["batch_size", "older_than"]


def test_every_job_declares_its_parameters_and_parses_its_defaults() -> None:
    for name, spec in jobs.registry().items():
        assert spec.parse({}) is not None, name
        for key, help_text, _default in spec.options.describe():
            assert help_text, f"{name}: parameter {key} has no help"


def lines(result: object) -> list[str]:
    return result.stderr.strip().splitlines()  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [
    ("jobs", "run", "retention", "--param", "dayz=7"),                 # a misspelt parameter
    ("jobs", "run", "retention", "--param", "days=0"),
    ("jobs", "run", "retention", "--param", "days=99999999999999999999"),
    ("jobs", "run", "retention", "--param", "batch_size=-1"),
    ("jobs", "run", "aggregate-daily", "--since", "0001-01-01"),
    ("jobs", "run", "aggregate-daily", "--date", "2026-01-01", "--since", "2026-01-01"),
    ("jobs", "run", "refresh-matviews", "--if-older-than", "5"),      # no unit
    ("jobs", "run", "partition-maintenance", "--param", "months_ahead=-1"),
    ("jobs", "run", "partition-maintenance", "--param", "months_ahead=100000"),
    ("jobs", "run", "partition-maintenance", "--param", "lock_timeout=0s"),
    ("jobs", "run", "partition-maintenance", "--param", "older_than=90"),
    ("jobs", "run", "archive-tracking", "--param", "older_than=0s"),
    ("jobs", "run", "promotion-backfill", "--param", "batch_time=0ms"),
    ("jobs", "run", "promotion-backfill", "--param", "names=no_such_column"),
    ("jobs", "run", "table-sizes", "--param", "x=1"),
    ("partitions", "ensure", "--months-ahead", "-2"),
    ("partitions", "ensure", "--months-ahead", "5000"),
    ("partitions", "retire", "--older-than", "90"),
    ("partitions", "retire", "--older-than", "0d"),
    ("queue", "work", "--handler", "os:system", "--once"),
    ("queue", "work", "--batch", "0", "--once"),
    ("queue", "work", "--visibility", "0s", "--once"),
    ("upgrade", "--lock-timeout", "0s"),
    ("upgrade", "--retries", "-1"),
    ("downgrade", "base", "--retries", "1000"),
    ("backfill", "run", "--batch-time", "0s"),
    ("backfill", "rejects", "source_type", "--limit", "-1"),
    ("jobs", "history", "--limit", "-1"),
    ("analytics", "dashboard", ""),
    ("analytics", "dashboard", "user1", "--days", "0"),
    ("analytics", "dashboard", "user1", "--days", "100000"),
    ("analytics", "dashboard", "user1", "--from", "0001-01-01"),
    ("analytics", "legacy-restore", "--yes", "--batch-size", "99999999999999999999"),
    ("ingest", "--show-rejects", "-5", "-"),
    ("ingest", "--show-rejects", "101", "-"),
    ("partitions", "retire"),                                           # neither --older-than nor --before
    ("partitions", "retire", "--older-than", "90d", "--before", "2026-01-01T00:00:00Z"),
    ("partitions", "retire", "--before", "2026-01-01 00:00:00"),       # no UTC offset
    ("partitions", "retire", "--before", "0001-01-01T00:00:00Z"),
    ("partitions", "retire", "--older-than", "90d", "--archive-schema", "a;drop"),
    ("partitions", "list", "--table", "x y"),
    ("backfill", "progress", "--fail-above", "150%"),
    ("backfill", "progress", "--fail-above", "nan"),
    ("audit", "indexes", "--fail-on", "bogus"),
    ("audit", "triggers", "--fail-on", ","),
    ("analytics", "legacy-restore"),                                   # not confirmed
    ("downgrade", "base", "--statement-timeout", "90"),
])
def test_a_wrong_input_is_exit_2_in_at_most_three_lines_and_changes_nothing(db_url: str, args: tuple[str, ...]) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:  # events a wrong handler must not touch
        conn.execute("INSERT INTO entity_types (name, display_name) VALUES ('contact', 'Contact')")
        conn.execute("INSERT INTO entities (entity_type_id) SELECT id FROM entity_types, generate_series(1, 5)")
    before = footprint(db_url)
    assert before[1] >= 5
    result = run_cli(*args, env={"TRACKSCHEMA_DATABASE_URL": db_url}, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert 1 <= len(lines(result)) <= 3 and "Traceback" not in result.stderr, result.stderr
    assert footprint(db_url) == before


@pytest.mark.parametrize(("content", "message"), [
    (b"a,b,c\n1,2,3\n", "is not a file of JSON lines: line 1 is not JSON"),
    (b"\n\n[1, 2]\n", "line 3 is a JSON list, not an object"),
    (b"\x00\xff\xfe binary", "line 1 is not JSON"),
])
def test_a_source_that_is_not_json_batches_is_refused_before_anything_is_sent(db_url: str, tmp_path, content: bytes, message: str) -> None:  # noqa: ANN001
    source = tmp_path / "events.jsonl"
    source.write_bytes(content)
    before = footprint(db_url)
    with psycopg.connect(db_url) as conn:
        rejects_before = conn.execute("SELECT count(*) FROM trackschema.analytics_ingest_rejects").fetchone()
    result = run_cli("ingest", str(source), env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 2 and message in result.stderr and "nothing was ingested" in result.stderr
    assert len(lines(result)) == 1
    assert footprint(db_url) == before
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM trackschema.analytics_ingest_rejects").fetchone() == rejects_before


def test_a_huge_bad_line_later_in_the_file_is_recorded_and_reported_short(db_url: str, tmp_path) -> None:  # noqa: ANN001
    source = tmp_path / "events.jsonl"
    source.write_bytes(b'{"events": []}\n' + b"x" * 10_000_000 + b"\n")
    result = run_cli("ingest", str(source), "--json", env={"TRACKSCHEMA_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) < 2_000
    summary = json.loads(result.stdout)
    assert summary["rejected"] == 1 and summary["rejects"][0]["reason"].startswith("not valid JSON")
    with psycopg.connect(db_url) as conn:  # the line itself is kept for whoever investigates
        assert conn.execute("SELECT count(*) FROM trackschema.analytics_ingest_rejects").fetchone() == (1,)


@pytest.mark.parametrize(("variable", "value"), [
    ("TRACKSCHEMA_LOCK_TIMEOUT", "0s"),
    ("TRACKSCHEMA_LOCK_WAIT", "30"),
    ("TRACKSCHEMA_LOCK_RETRIES", "-1"),
    ("TRACKSCHEMA_STATEMENT_TIMEOUT", "forever"),
])
def test_a_bad_environment_variable_is_refused_naming_it_and_changes_nothing(db_url: str, variable: str, value: str) -> None:
    """The migration options read their environment variables through the declared kinds."""
    before = footprint(db_url)
    result = run_cli("upgrade", env={"TRACKSCHEMA_DATABASE_URL": db_url, variable: value}, timeout=60)
    assert result.returncode == 2 and lines(result) == [lines(result)[0]], result.stderr
    assert variable in result.stderr and repr(value) in result.stderr
    assert footprint(db_url) == before


def test_options_built_from_code_pass_the_declared_checks() -> None:
    """A caller that builds options in code cannot bypass what the CLI refuses."""
    with pytest.raises(InputError, match=r"bad --batch-size '11': give a whole number from 1 to 10"):
        Sample(batch_size=11)
    assert Sample(batch_size=10).batch_size == 10
