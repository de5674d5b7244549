"""The `trackschema` command line: parse, call a library function, render.

Exit codes: 0 success; 1 a check failed; 2 a usage, configuration or connection error,
printed as one line (the traceback only with --verbose).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from trackschema import audits as audits_module
from trackschema.cli import console
from trackschema.jobs import registry as jobs_module
from trackschema.migrations import runner as migrate
from trackschema.runtime import sandbox as sandbox_module
from trackschema.audits import jsonb as jsonb_audit
from trackschema.errors import TrackschemaError
from trackschema.cli.adapters import declared_options
from trackschema.operations.options import cli_label, param_label, parse_pairs
from trackschema.runtime.settings import MIGRATION_OPTION_NAMES, DowngradeOptions, MigrationOptions, Settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="PostgreSQL migrations and schema management for the event-tracking schema.",
)
sandbox_app = typer.Typer(no_args_is_help=True, help="A throwaway local PostgreSQL for trying things.")
app.add_typer(sandbox_app, name="sandbox")
jobs_app = typer.Typer(no_args_is_help=True, help="Scheduled jobs: list, run, history.")
app.add_typer(jobs_app, name="jobs")
audit_app = typer.Typer(help="Read-only audits: indexes, triggers, partitions, JSONB keys. Each finding carries the SQL that fixes it; nothing is changed.")
app.add_typer(audit_app, name="audit")


@dataclass
class GlobalOptions:
    """The options before the command (`--database-url`, `--verbose`). `main` creates one
    and hands it to Typer as the context object; the callback fills it in."""

    database_url: str | None = None
    verbose: bool = False


def _global(ctx: typer.Context) -> GlobalOptions:
    found = ctx.find_object(GlobalOptions)
    return found if found is not None else GlobalOptions()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SqlOpt = Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it (offline mode).")]


@app.callback()
def global_options(
    ctx: typer.Context,
    database_url: Annotated[Optional[str], typer.Option("--database-url", help="PostgreSQL URL (else TRACKSCHEMA_DATABASE_URL, then DATABASE_URL).", show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and migration logging.")] = False,
) -> None:
    options = ctx.ensure_object(GlobalOptions)
    options.database_url, options.verbose = database_url, verbose
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose:
        logging.getLogger("alembic").setLevel(logging.INFO)


def settings(ctx: typer.Context, migration: MigrationOptions | None = None) -> Settings:
    """The command's settings: the global --database-url, and the migration options given
    to upgrade/downgrade (else the TRACKSCHEMA_* variables and the declared defaults)."""
    return Settings.from_env(database_url=_global(ctx).database_url, migration=migration)


@app.command()
@declared_options(MigrationOptions, names=MIGRATION_OPTION_NAMES)
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision (default head).")] = "head",
    sql: SqlOpt = False, json_out: JsonOpt = False,
    *,
    options: MigrationOptions,
) -> None:
    """Apply revisions up to REVISION, one transaction each, under the migration lock."""
    result = migrate.upgrade(settings(ctx, options), revision, sql=sql)
    _render_migration(result, json_out)


@app.command()
@declared_options(DowngradeOptions, names=MIGRATION_OPTION_NAMES)
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, `base`, `-1`, or FROM:TO with --sql.")],
    sql: SqlOpt = False, json_out: JsonOpt = False,
    *,
    options: DowngradeOptions,
) -> None:
    """Revert revisions down to REVISION."""
    result = migrate.downgrade(settings(ctx, options), revision, sql=sql)
    _render_migration(result, json_out)


def _render_migration(result: migrate.MigrationResult, json_out: bool) -> None:
    if result.sql is not None:
        console.print_text(result.sql)
    elif json_out:
        console.print_json(result.to_dict())
    else:
        console.print_migration(result)


@app.command()
def current(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The revision the database is at."""
    s = settings(ctx)
    heads = migrate.current_heads(s)
    if json_out:
        console.print_json({"database": s.display_url, "current": heads})
    else:
        console.print_current(s.display_url, heads)


@app.command()
def history(json_out: JsonOpt = False) -> None:
    """Every revision, newest first."""
    revisions = migrate.history()
    console.show(revisions, json_out, lambda shown: console.print_revisions(shown, title="Revisions (newest first)"))


@app.command()
def heads(json_out: JsonOpt = False) -> None:
    """The newest revision(s)."""
    revisions = migrate.heads()
    console.show(revisions, json_out, lambda shown: console.print_revisions(shown, title="Heads"))


@app.command()
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Revision, pending revisions and catalog health on one page."""
    from trackschema import status as status_module  # the status page reads everything: loaded when asked for

    page = status_module.collect(settings(ctx))
    console.show(page, json_out, console.print_status)


@sandbox_app.command("start")
@declared_options(sandbox_module.SandboxOptions)
def sandbox_start(
    print_url: Annotated[bool, typer.Option("--print-url", help="Print only the URL (for `export ...=$(...)`).")] = False,
    json_out: JsonOpt = False,
    *,
    options: sandbox_module.SandboxOptions,
) -> None:
    """Start a throwaway PostgreSQL, or a local Citus cluster with --citus N (or report the running one)."""
    info = sandbox_module.start(options)
    if print_url:
        console.print_text(info.url)
    elif json_out:
        console.print_json(info.to_dict())
    else:
        console.print_sandbox(info)


@sandbox_app.command("url")
def sandbox_url() -> None:
    """Print the sandbox's URL (a Citus cluster's: the coordinator's)."""
    console.print_text(sandbox_module.url())


@sandbox_app.command("stop")
def sandbox_stop() -> None:
    """Stop the sandbox (every node of a Citus cluster) and delete its data."""
    stopped = sandbox_module.stop()
    console.info("sandbox stopped and removed" if stopped else "no sandbox was running")


@app.command()
def demo(
    stop: Annotated[bool, typer.Option("--stop", help="Stop and remove the sandbox at the end.")] = False,
) -> None:
    """Sandbox, upgrade head, sample data, status: the whole tour on a throwaway server."""
    from trackschema import demo as demo_module

    result = demo_module.run(console.demo_step, stop_sandbox=stop, backfill_bar=console.BackfillBar)
    console.print_demo_end(result)


# --- jobs ------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Registered jobs, their schedule and their last run."""
    infos = jobs_module.list_jobs(settings(ctx))
    console.show(infos, json_out, console.print_jobs)


@jobs_app.command("run")
def jobs_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Job name (see `jobs list`).")],
    date: Annotated[Optional[str], typer.Option("--date", help="The day to work on (YYYY-MM-DD), for jobs that take one.")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Work on every day from this one (YYYY-MM-DD).")] = None,
    if_older_than: Annotated[Optional[str], typer.Option("--if-older-than", help="Skip when the last successful work is younger than this (e.g. 5m).")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Job parameter KEY=VALUE (repeatable).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run one job now; the run is recorded. Exit 1 when the job fails."""
    params: dict[str, object] = dict(parse_pairs(param))
    given = {key: value for key, value in (("date", date), ("since", since), ("if_older_than", if_older_than)) if value is not None}
    params.update(given)
    run = jobs_module.run(settings(ctx), name, params,
                          label=lambda key: cli_label(key) if key in given else param_label(key))
    console.show(run, json_out, console.print_job_run)


@jobs_app.command("history")
@declared_options(jobs_module.HistoryOptions)
def jobs_history(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="Only this job.")] = None,
    json_out: JsonOpt = False,
    *,
    options: jobs_module.HistoryOptions,
) -> None:
    """Recent job runs, newest first."""
    runs = jobs_module.history(settings(ctx), name, options.limit)
    console.show(runs, json_out, console.print_job_history)


# --- issue 8: audit triggers, queue (keep additions inside this block) -------------------

from trackschema.tracking import queue as queue_module  # noqa: E402 - kept inside the issue-8 block
from trackschema.audits import triggers as trigger_audit  # noqa: E402

queue_app = typer.Typer(no_args_is_help=True, help="Consumers of the entity_events outbox: status (lag), a worker, unregister.")
app.add_typer(queue_app, name="queue")


@audit_app.command("triggers")
@declared_options(audits_module.TriggerAuditOptions)
def audit_triggers_cmd(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    *,
    options: audits_module.TriggerAuditOptions,
) -> None:
    """updated_at triggers missing or doubled, stale entity tracking, unused trigger functions."""
    findings = trigger_audit.audit_triggers(settings(ctx))
    console.show(findings, json_out, console.print_trigger_findings)
    if options.failing(findings):
        raise typer.Exit(1)


@queue_app.command("status")
def queue_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Each consumer's lag (events, seconds), failed and dead events; totals by status."""
    result = queue_module.stats(settings(ctx))
    console.show(result, json_out, console.print_queue_stats)


@queue_app.command("stats")
def queue_stats(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The same as `queue status` (its name before consumers)."""
    queue_status(ctx, json_out)


@queue_app.command("unregister")
@declared_options(queue_module.UnregisterOptions)
def queue_unregister(
    ctx: typer.Context,
    consumer: Annotated[str, typer.Argument(help="The consumer to forget, with its cursor and failed events.")],
    json_out: JsonOpt = False,
    *,
    options: queue_module.UnregisterOptions,
) -> None:
    """Forget a consumer: partitions it held back may then be retired (exit 1: no such consumer)."""
    result = queue_module.unregister(settings(ctx), consumer)
    console.show(result, json_out, console.print_unregistered)
    if not result.existed:
        raise typer.Exit(1)


@queue_app.command("work")
@declared_options(queue_module.WorkerOptions, names={"base_delay": "--retry-delay", "max_delay": "--max-retry-delay"})
def queue_work(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    *,
    options: queue_module.WorkerOptions,
) -> None:
    """Handle a consumer's events until stopped (SIGTERM/Ctrl-C), or with --once until none is ready."""
    import signal
    import threading

    stop = threading.Event()  # the handler was checked when the options were parsed, before this
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    result = queue_module.work(settings(ctx), options=options, stop=stop)
    console.show(result, json_out, console.print_work_result)


# --- end issue 8 ---------------------------------------------------------------------------


# --- issue 3: backfill (keep additions inside this block) --------------------------------

# the engine and the progress queries load the promotion declarations (and so Alembic):
# imported in the commands; their options are declared apart (promotions.options)
from trackschema.promotions import options as promotion_options  # noqa: E402

backfill_app = typer.Typer(no_args_is_help=True, help="JSONB→column promotions: run the backfill, NULL rates, rejects.")
app.add_typer(backfill_app, name="backfill")
PromotionNames = Annotated[Optional[list[str]], typer.Argument(help="Promotions, by column name (default: all).", show_default=False)]


@backfill_app.command("run")
@declared_options(promotion_options.BackfillOptions, skip={"names"})
def backfill_run(
    ctx: typer.Context,
    names: PromotionNames = None,
    json_out: JsonOpt = False,
    *,
    options: promotion_options.BackfillOptions,
) -> None:
    """Fill the promoted columns from their JSON keys in committed batches; rerun to resume."""
    from trackschema.promotions import backfill as backfill_module

    if names:
        backfill_module.select(names)  # an unknown promotion is refused before anything connects
    try:
        if json_out:
            result = backfill_module.run(settings(ctx), names, options)
        else:
            with console.BackfillBar() as bar:
                result = backfill_module.run(settings(ctx), names, options, on_progress=bar)
    except KeyboardInterrupt:
        raise TrackschemaError("interrupted: committed batches are kept; run `trackschema backfill run` again to resume", exit_code=130) from None
    console.show(result, json_out, console.print_backfill_result)


@backfill_app.command("progress")
@declared_options(promotion_options.ProgressOptions)
def backfill_progress(
    ctx: typer.Context,
    names: PromotionNames = None,
    json_out: JsonOpt = False,
    *,
    options: promotion_options.ProgressOptions,
) -> None:
    """Per promotion: rows with the key, filled, rejected, and the NULL rate."""
    from trackschema.promotions import progress as progress_module

    rate = options.fail_above
    rows = progress_module.progress(settings(ctx), names)
    console.show(rows, json_out, console.print_promotion_progress)
    if rate is not None:
        failing = progress_module.above(rows, rate)
        if failing:
            console.error("NULL rate above " + f"{rate:.2%}: " + ", ".join(f"{r.name} {r.null_rate:.2%}" for r in failing)
                          + " (run `trackschema backfill run`)")
            raise typer.Exit(1)


@backfill_app.command("rejects")
@declared_options(promotion_options.RejectsOptions)
def backfill_rejects(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The promotion (column name).")],
    json_out: JsonOpt = False,
    *,
    options: promotion_options.RejectsOptions,
) -> None:
    """Rows whose JSON value could not be promoted, and why (newest first)."""
    from trackschema.promotions import progress as progress_module

    listing = progress_module.rejects(settings(ctx), name, options.limit)
    if json_out:
        console.print_json([r.to_dict() for r in listing.rejects])
    else:
        console.print_rejects(listing)


# --- end issue 3 ---------------------------------------------------------------------------


# --- issue 4: ingest (keep additions inside this block) ----------------------------------


from trackschema.analytics import dashboard as analytics_dashboard  # noqa: E402
from trackschema.analytics import ingest as analytics_ingest  # noqa: E402
from trackschema.analytics import legacy as analytics_legacy  # noqa: E402

analytics_app = typer.Typer(no_args_is_help=True, help="Analytics: a user's dashboard, the legacy-table rollback.")
app.add_typer(analytics_app, name="analytics")


@app.command("ingest")
@declared_options(analytics_ingest.IngestOptions)
def ingest(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A file of JSON lines, one batch {\"events\": [...]} per line, or - for stdin.")],
    json_out: JsonOpt = False,
    *,
    options: analytics_ingest.IngestOptions,
) -> None:
    """Load analytics batches in one streaming pass, a transaction per --batch-events events; invalid and duplicate events are recorded and reported."""
    s = settings(ctx)
    with console.ingest_progress(analytics_ingest.source_size(source), enabled=not json_out) as on_progress:
        summary = analytics_ingest.ingest_source(s, source, on_progress, options)
    console.show(summary, json_out, lambda shown: console.print_ingest_summary(shown, options.show_rejects))
    if options.fail_on_reject and summary.rejected:
        raise typer.Exit(1)


@analytics_app.command("dashboard")
@declared_options(analytics_dashboard.DashboardOptions, names={"first": "--from", "last": "--to"})
def analytics_dashboard_command(
    ctx: typer.Context,
    user_code: Annotated[str, typer.Argument(help="The user code whose traffic to show.")],
    json_out: JsonOpt = False,
    *,
    options: analytics_dashboard.DashboardOptions,
) -> None:
    """A user's stats per day (closed days from the roll-ups, today from the raw rows), pages, clicks, shares."""
    board = analytics_dashboard.load_dashboard(settings(ctx), user_code, days=options.days, first=options.first, last=options.last)
    console.show(board, json_out, console.print_dashboard)


@analytics_app.command("legacy-restore")
@declared_options(analytics_legacy.RestoreOptions)
def analytics_legacy_restore(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    *,
    options: analytics_legacy.RestoreOptions,
) -> None:
    """Roll back the legacy move: archived rows back into analytics_events, their normalized copies removed."""
    result = analytics_legacy.restore_all(settings(ctx), options.batch_size)
    console.show(result, json_out, console.print_legacy_restore)



# --- end issue 4 ---------------------------------------------------------------------------


# --- issue 5: partitions (keep additions inside this block) ------------------------------

from trackschema.partitions import monthly as partitions_module  # noqa: E402

partitions_app = typer.Typer(no_args_is_help=True, help="Monthly range partitions: list, make ahead, retire old ones.")
app.add_typer(partitions_app, name="partitions")


@partitions_app.command("list")
@declared_options(partitions_module.ListOptions)
def partitions_list(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    *,
    options: partitions_module.ListOptions,
) -> None:
    """Every partition of every partitioned table: bounds (UTC), rows, bytes."""
    infos = partitions_module.list_partitions(settings(ctx), options.table, estimate=options.estimate)
    console.show(infos, json_out, console.print_partitions)


@partitions_app.command("ensure")
@declared_options(partitions_module.EnsureOptions)
def partitions_ensure(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    *,
    options: partitions_module.EnsureOptions,
) -> None:
    """Create the partitions for this month and the months ahead (and drain a default partition)."""
    created = partitions_module.ensure(settings(ctx), options.months_ahead, options.table)
    console.show(created, json_out, console.print_ensured)


@partitions_app.command("retire")
@declared_options(partitions_module.RetireOptions, pairs={"action": ("--archive", "--drop")})
def partitions_retire(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    *,
    options: partitions_module.RetireOptions,
) -> None:
    """Detach (CONCURRENTLY) the partitions entirely older than the cutoff, then archive or drop them."""
    result = partitions_module.retire(settings(ctx), **options.values())
    console.show(result, json_out, console.print_retired)



# --- end issue 5 ---------------------------------------------------------------------------


# --- issue 6: jobs schedule, matviews (keep additions inside this block) -----------------

from trackschema.jobs import schedules as scheduling_module  # noqa: E402 - kept inside this issue's block

@jobs_app.command("schedule")
def jobs_schedule(
    ctx: typer.Context,
    crontab: Annotated[bool, typer.Option("--crontab", help="Change nothing; print crontab lines for every job (also where pg_cron runs).")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Unschedule all of this database's jobs from pg_cron.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Register every job at its cadence with pg_cron where it runs; else print crontab lines.

    Idempotent: running it again leaves one pg_cron entry per job and unschedules jobs
    that are no longer registered. Jobs that exist only in Python get crontab lines.
    """
    result = scheduling_module.schedule(settings(ctx), crontab_only=crontab, remove=remove)
    console.show(result, json_out, console.print_schedule)



# --- end issue 6 ---------------------------------------------------------------------------


# --- issue 7: audits (keep additions inside this block) ----------------------------------

def _report_findings(findings: list, *, title: str, json_out: bool, options: audits_module.AuditOptions) -> None:  # noqa: ANN001
    console.show(findings, json_out, lambda shown: console.print_findings(shown, title=title))
    failing = options.failing(findings)
    if failing:
        if not json_out:
            console.error(f"{len(failing)} finding(s) of kind {', '.join(sorted({f.kind for f in failing}))}")
        raise typer.Exit(1)


@audit_app.callback(invoke_without_command=True)
@declared_options(audits_module.AuditOptions)
def audit_all(ctx: typer.Context, json_out: JsonOpt = False, *, options: audits_module.AuditOptions) -> None:
    """With no subcommand: run every audit; with --fail-on, exit 1 on findings (for CI)."""
    if ctx.invoked_subcommand is not None:
        return
    findings = audits_module.run_all(settings(ctx))
    _report_findings(findings, title="All audits", json_out=json_out, options=options)


@audit_app.command("indexes")
@declared_options(audits_module.AuditOptions)
def audit_indexes_cmd(ctx: typer.Context, json_out: JsonOpt = False, *, options: audits_module.AuditOptions) -> None:
    """Unused, duplicate, redundant, invalid and bloated indexes, unindexed foreign keys, write cost."""
    findings = audits_module.audit_indexes(settings(ctx))
    _report_findings(findings, title="Index audit", json_out=json_out, options=options)


@audit_app.command("jsonb")
def audit_jsonb_cmd(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """JSONB keys queried most (pg_stat_statements): candidates for column promotion."""
    report = jsonb_audit.candidates(settings(ctx))
    console.show(report, json_out, console.print_jsonb_report)



# --- end issue 7 ---------------------------------------------------------------------------


# --- plan (issue 17) ---

from trackschema.migrations import plan as plan_module  # noqa: E402 - kept inside the issue-17 block


@app.command("plan")
@declared_options(plan_module.PlanOptions)
def plan_command(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision (default head).")] = "head",
    json_out: JsonOpt = False,
    *,
    options: plan_module.PlanOptions,
) -> None:
    """Rehearse the pending revisions in a scratch database: per statement, the locks it takes, what they block, for how long, and rewrites. The target is only read."""
    result = plan_module.plan(settings(ctx), revision, options)
    console.show(result, json_out, console.print_plan)
    hits = result.failing
    if hits:
        shown = "; ".join(hit.describe() for hit in hits[:3]) + (f"; and {len(hits) - 3} more" if len(hits) > 3 else "")
        console.error(f"--fail-on {','.join(result.fail_on)}: {len(hits)} statement(s) hit it: {shown}")
        raise typer.Exit(1)


# --- end plan ---


# --- check (issue 17) ---

from trackschema.schema import check as check_module  # noqa: E402 - kept inside the check block


@app.command("check")
@declared_options(check_module.CheckOptions)
def check_command(ctx: typer.Context, json_out: JsonOpt = False, *, options: check_module.CheckOptions) -> None:
    """Compare the database with a scratch database built to its revision: tables, columns, indexes, constraints, triggers, functions, policies, views, partitions, grants. Exit 1 on drift. The database is only read."""
    result = check_module.check(settings(ctx), options)
    console.show(result, json_out, console.print_check)
    if not result.clean:
        raise typer.Exit(1)


# --- end check ---


# --- ci (issue 18) ---

from trackschema.ci import options as ci_options  # noqa: E402 - kept inside the ci block
from trackschema.errors import ConfigurationError  # noqa: E402 - kept inside the ci block


@app.command("ci")
@declared_options(ci_options.CiOptions)
def ci_command(ctx: typer.Context, json_out: JsonOpt = False, *, options: ci_options.CiOptions) -> None:
    """The whole migration check on a throwaway server: upgrade base→head, round trip head→base→head, each revision up/down/up, squawk over the --sql plan, audits. Exit 1 naming each failed step."""
    if _global(ctx).database_url:
        raise ConfigurationError("ci does not use --database-url (it never touches an application database): "
                                 "give a server for its throwaway databases with `trackschema ci --server-url URL`")
    from trackschema.ci import run as ci_run  # the steps load Alembic and squawk's lint: when ci runs

    result = ci_run.run(options, on_step=None if json_out else console.ci_step)
    console.show(result, json_out, console.print_ci)
    if not result.ok:
        console.error("ci failed: " + "; ".join(f"{step.title} ({step.detail})" for step in result.failed))
        raise typer.Exit(1)


# --- end ci ---


def main() -> None:
    """Entry point: run the app; user errors become one line and exit code 2."""
    options = GlobalOptions()
    try:
        app(obj=options)
    except TrackschemaError as exc:
        if options.verbose:
            raise
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
