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
    for flag in ("--batch", "--visibility", "--retry-delay", "--max-retry-delay", "--idle-sleep", "--once", "--max-batches", "--name", "--handler"):
        assert flag in work, flag
    assert {"batch", "visibility", "base_delay", "max_delay", "idle_sleep", "once", "max_batches", "name", "handler"} <= set(WorkerOptions.declared())
    for name in WorkerOptions.declared():
        assert f"--{name.replace('_', '-')}" in work or name in {"base_delay", "max_delay"}, name


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


def test_every_command_with_options_takes_them_from_a_declaration() -> None:
    """Each command's options are its declaration's fields (plus --json/--sql/--help and
    positional arguments): nothing is declared by hand twice."""
    from trackschema.analytics.ingest import IngestOptions
    from trackschema.analytics.legacy import RestoreOptions
    from trackschema.audits import AuditOptions, TriggerAuditOptions
    from trackschema.jobs.registry import HistoryOptions
    from trackschema.partitions.monthly import ListOptions, RetireOptions
    from trackschema.promotions.progress import ProgressOptions, RejectsOptions
    from trackschema.runtime.settings import DowngradeOptions, MigrationOptions

    import typer

    from trackschema.cli.commands import app

    root = typer.main.get_command(app)

    def option_names(path: tuple[str, ...]) -> set[str]:
        """The options the command at `path` offers, read from the Click command Typer built."""
        command = root
        for word in path:
            command = command.commands[word]  # type: ignore[attr-defined]
        return {name for param in command.params if param.param_type_name == "option"
                for name in (*param.opts, *param.secondary_opts)}

    labels = {"lock_retries": "--retries", "action": "--archive"}
    for command, declaration in [
        (("upgrade",), MigrationOptions), (("downgrade",), DowngradeOptions), (("ingest",), IngestOptions),
        (("analytics", "legacy-restore"), RestoreOptions), (("audit", "indexes"), AuditOptions),
        (("audit", "triggers"), TriggerAuditOptions), (("jobs", "history"), HistoryOptions),
        (("partitions", "list"), ListOptions), (("partitions", "retire"), RetireOptions),
        (("backfill", "progress"), ProgressOptions), (("backfill", "rejects"), RejectsOptions),
    ]:
        offered = option_names(command)
        for name in declaration.declared():
            assert labels.get(name, f"--{name.replace('_', '-')}") in offered, (command, name)
        assert offered - {"--json", "--sql", "--help", "--drop"} <= {labels.get(n, f"--{n.replace('_', '-')}") for n in declaration.declared()}, command


def test_retire_takes_archive_or_drop_as_its_declared_action() -> None:
    url = {"TRACKSCHEMA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}  # never reached
    both = run_cli("partitions", "retire", env=url)
    assert both.returncode == 2
    assert both.stderr.strip() == ("error: say which partitions to retire: --older-than 90d, or --before "
                                   "2026-01-01T00:00:00+00:00 (one of them)")
    naive = run_cli("partitions", "retire", "--before", "2026-01-01T00:00:00", "--drop", env=url)
    assert naive.returncode == 2 and "add its UTC offset" in naive.stderr
    help_text = run_cli("partitions", "retire", "--help").stdout
    assert "--archive" in help_text and "--drop" in help_text and "(default: --archive)" in help_text


def test_the_migration_options_show_their_defaults_and_variables() -> None:
    help_text = " ".join(run_cli("upgrade", "--help").stdout.split())
    assert "(default: 30s; env TRACKSCHEMA_LOCK_WAIT)" in help_text.replace("│ ", "").replace(" │", "")
