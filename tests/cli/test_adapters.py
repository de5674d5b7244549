"""cli.adapters: a command's options come from the operation's declaration."""

from __future__ import annotations

from tests.conftest import run_cli
from trackschema.promotions.backfill import BackfillOptions
from trackschema.tracking.queue import WorkerOptions


def test_every_declared_option_is_on_the_command() -> None:
    help_text = run_cli("backfill", "run", "--help").stdout
    for name in BackfillOptions.declared():
        if name != "names":  # given as arguments
            assert f"--{name.replace('_', '-')}" in help_text, name
    work = run_cli("queue", "work", "--help").stdout
    for flag in ("--batch", "--visibility", "--retry-delay", "--max-retry-delay", "--idle-sleep", "--once", "--max-batches", "--name"):
        assert flag in work, flag
    assert set(WorkerOptions.declared()) == {"batch", "visibility", "base_delay", "max_delay", "idle_sleep", "once", "max_batches", "name"}


def test_the_cli_and_jobs_run_refuse_a_value_with_the_same_check() -> None:
    url = {"TRACKSCHEMA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}  # never reached
    cli = run_cli("backfill", "run", "--first-batch-rows", "0", env=url)
    job = run_cli("jobs", "run", "promotion-backfill", "--param", "first_batch_rows=0", env=url)
    assert cli.returncode == job.returncode == 2
    assert cli.stderr.strip() == "error: bad --first-batch-rows '0': give a whole number from 1 to 1,000,000"
    assert job.stderr.strip() == "error: bad --param first_batch_rows '0': give a whole number from 1 to 1,000,000"
    unknown = run_cli("backfill", "run", "no_such_column", env=url)
    assert unknown.returncode == 2 and "no_such_column" in unknown.stderr and "cannot connect" not in unknown.stderr


def test_partitions_ensure_and_the_dashboard_take_their_options_from_declarations() -> None:
    from trackschema.analytics.dashboard import DashboardOptions
    from trackschema.partitions.monthly import EnsureOptions, MaintenanceOptions

    assert set(EnsureOptions.declared()) <= set(MaintenanceOptions.declared())  # the job takes the same ones
    ensure = run_cli("partitions", "ensure", "--help").stdout
    assert "--months-ahead" in ensure and "--table" in ensure
    board = run_cli("analytics", "dashboard", "--help").stdout
    assert "--days" in board and "--from" in board and "--to" in board
    assert DashboardOptions().days == 30
    url = {"TRACKSCHEMA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}  # never reached
    refused = run_cli("partitions", "ensure", "--months-ahead", "121", env=url)
    same = run_cli("jobs", "run", "partition-maintenance", "--param", "months_ahead=121", env=url)
    assert refused.returncode == same.returncode == 2
    assert refused.stderr.strip() == "error: bad --months-ahead '121': give a whole number from 0 to 120"
    assert same.stderr.strip() == "error: bad --param months_ahead '121': give a whole number from 0 to 120"


def test_a_flag_that_defaults_to_true_is_refused_when_the_command_is_built() -> None:
    from dataclasses import dataclass

    import pytest

    from trackschema.cli.adapters import declared_options
    from trackschema.operations.inputs import Flag
    from trackschema.operations.options import Options, option

    @dataclass(frozen=True)
    class Always(Options):
        on: bool = option(Flag(), True, "On unless turned off.")

    with pytest.raises(TypeError, match="Always.on: a flag that defaults to true"):
        declared_options(Always)(lambda options: None)
