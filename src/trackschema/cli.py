"""The `trackschema` command line: parse, call a library function, render.

Exit codes: 0 success; 1 a check failed; 2 a usage, configuration or connection error,
printed as one line (the traceback only with --verbose).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from trackschema import console, demo as demo_module, jobs as jobs_module, migrate, sandbox as sandbox_module, status as status_module
from trackschema.errors import TrackschemaError
from trackschema.settings import Settings, parse_duration

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="PostgreSQL migrations and schema management for the event-tracking schema.",
)
sandbox_app = typer.Typer(no_args_is_help=True, help="A throwaway local PostgreSQL for trying things.")
app.add_typer(sandbox_app, name="sandbox")
jobs_app = typer.Typer(no_args_is_help=True, help="Scheduled jobs: list, run, history.")
app.add_typer(jobs_app, name="jobs")


@dataclass
class GlobalOptions:
    database_url: str | None = None
    verbose: bool = False


OPTIONS = GlobalOptions()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SqlOpt = Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it (offline mode).")]
LockWaitOpt = Annotated[Optional[str], typer.Option("--lock-wait", help="How long to wait for another migration to finish (default 30s).")]
LockTimeoutOpt = Annotated[Optional[str], typer.Option("--lock-timeout", help="How long one statement may wait for a table lock before retrying (default 5s).")]
StatementTimeoutOpt = Annotated[Optional[str], typer.Option("--statement-timeout", help="Longest a single statement may run (default 10min).")]
RetriesOpt = Annotated[Optional[int], typer.Option("--retries", help="Retries of a revision after a lock timeout (default 5).")]


@app.callback()
def global_options(
    database_url: Annotated[Optional[str], typer.Option("--database-url", help="PostgreSQL URL (else TRACKSCHEMA_DATABASE_URL, then DATABASE_URL).", show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and migration logging.")] = False,
) -> None:
    OPTIONS.database_url = database_url
    OPTIONS.verbose = verbose
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose:
        logging.getLogger("alembic").setLevel(logging.INFO)


def settings(*, lock_wait: str | None = None, lock_timeout: str | None = None, statement_timeout: str | None = None, retries: int | None = None, allow_data_loss: bool | None = None) -> Settings:
    return Settings.from_env(
        database_url=OPTIONS.database_url,
        lock_wait=parse_duration(lock_wait) if lock_wait else None,
        lock_timeout=parse_duration(lock_timeout) if lock_timeout else None,
        statement_timeout=parse_duration(statement_timeout) if statement_timeout else None,
        lock_retries=retries,
        allow_data_loss=allow_data_loss,
    )


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision (default head).")] = "head",
    sql: SqlOpt = False, json_out: JsonOpt = False, lock_wait: LockWaitOpt = None,
    lock_timeout: LockTimeoutOpt = None, statement_timeout: StatementTimeoutOpt = None, retries: RetriesOpt = None,
) -> None:
    """Apply revisions up to REVISION, one transaction each, under the migration lock."""
    result = migrate.upgrade(settings(lock_wait=lock_wait, lock_timeout=lock_timeout, statement_timeout=statement_timeout, retries=retries), revision, sql=sql)
    _render_migration(result, json_out)


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, `base`, `-1`, or FROM:TO with --sql.")],
    sql: SqlOpt = False, json_out: JsonOpt = False, lock_wait: LockWaitOpt = None,
    lock_timeout: LockTimeoutOpt = None, statement_timeout: StatementTimeoutOpt = None, retries: RetriesOpt = None,
    allow_data_loss: Annotated[bool, typer.Option("--allow-data-loss", help="Let revisions drop tables that still hold rows.")] = False,
) -> None:
    """Revert revisions down to REVISION."""
    result = migrate.downgrade(
        settings(lock_wait=lock_wait, lock_timeout=lock_timeout, statement_timeout=statement_timeout, retries=retries, allow_data_loss=allow_data_loss),
        revision, sql=sql,
    )
    _render_migration(result, json_out)


def _render_migration(result: migrate.MigrationResult, json_out: bool) -> None:
    if result.sql is not None:
        console.print_text(result.sql)
    elif json_out:
        console.print_json(result.to_dict())
    else:
        console.print_migration(result)


@app.command()
def current(json_out: JsonOpt = False) -> None:
    """The revision the database is at."""
    s = settings()
    heads = migrate.current_heads(s)
    if json_out:
        console.print_json({"database": s.display_url, "current": heads})
    else:
        console.print_current(s.display_url, heads)


@app.command()
def history(json_out: JsonOpt = False) -> None:
    """Every revision, newest first."""
    revisions = migrate.history()
    if json_out:
        console.print_json([r.to_dict() for r in revisions])
    else:
        console.print_revisions(revisions, title="Revisions (newest first)")


@app.command()
def heads(json_out: JsonOpt = False) -> None:
    """The newest revision(s)."""
    revisions = migrate.heads()
    if json_out:
        console.print_json([r.to_dict() for r in revisions])
    else:
        console.print_revisions(revisions, title="Heads")


@app.command()
def status(json_out: JsonOpt = False) -> None:
    """Revision, pending revisions and catalog health on one page."""
    page = status_module.collect(settings())
    if json_out:
        console.print_json(page.to_dict())
    else:
        console.print_status(page)


@sandbox_app.command("start")
def sandbox_start(
    print_url: Annotated[bool, typer.Option("--print-url", help="Print only the URL (for `export ...=$(...)`).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Start a throwaway PostgreSQL (or report the running one)."""
    info = sandbox_module.start()
    if print_url:
        console.print_text(info.url)
    elif json_out:
        console.print_json(info.to_dict())
    else:
        console.print_sandbox(info)


@sandbox_app.command("url")
def sandbox_url() -> None:
    """Print the sandbox's URL."""
    console.print_text(sandbox_module.url())


@sandbox_app.command("stop")
def sandbox_stop() -> None:
    """Stop the sandbox and delete its data."""
    stopped = sandbox_module.stop()
    console.info("sandbox stopped and removed" if stopped else "no sandbox was running")


@app.command()
def demo(
    stop: Annotated[bool, typer.Option("--stop", help="Stop and remove the sandbox at the end.")] = False,
) -> None:
    """Sandbox, upgrade head, sample data, status: the whole tour on a throwaway server."""
    result = demo_module.run(console.demo_step, stop_sandbox=stop, backfill_bar=console.BackfillBar)
    console.print_demo_end(result)


# --- jobs ------------------------------------------------------------------------------


def _parse_params(pairs: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TrackschemaError(f"bad --param {pair!r}: write it as KEY=VALUE")
        params[key.replace("-", "_")] = value
    return params


@jobs_app.command("list")
def jobs_list(json_out: JsonOpt = False) -> None:
    """Registered jobs, their schedule and their last run."""
    infos = jobs_module.list_jobs(settings())
    if json_out:
        console.print_json([i.to_dict() for i in infos])
    else:
        console.print_jobs(infos)


@jobs_app.command("run")
def jobs_run(
    name: Annotated[str, typer.Argument(help="Job name (see `jobs list`).")],
    date: Annotated[Optional[str], typer.Option("--date", help="The day to work on (YYYY-MM-DD), for jobs that take one.")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Work on every day from this one (YYYY-MM-DD).")] = None,
    if_older_than: Annotated[Optional[str], typer.Option("--if-older-than", help="Skip when the last successful work is younger than this (e.g. 5m).")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Job parameter KEY=VALUE (repeatable).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run one job now; the run is recorded. Exit 1 when the job fails."""
    params: dict[str, object] = _parse_params(param)
    for key, value in (("date", date), ("since", since), ("if_older_than", if_older_than)):
        if value is not None:
            params[key] = value
    run = jobs_module.run(settings(), name, params)
    if json_out:
        console.print_json(run.to_dict())
    else:
        console.print_job_run(run)


@jobs_app.command("history")
def jobs_history(
    name: Annotated[Optional[str], typer.Argument(help="Only this job.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many runs.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Recent job runs, newest first."""
    runs = jobs_module.history(settings(), name, limit)
    if json_out:
        console.print_json([r.to_dict() for r in runs])
    else:
        console.print_job_history(runs)


# --- issue 8: audit triggers, queue (keep additions inside this block) -------------------


# --- end issue 8 ---------------------------------------------------------------------------


# --- issue 3: backfill (keep additions inside this block) --------------------------------

from trackschema.promotions import backfill as backfill_module, progress as progress_module  # noqa: E402

backfill_app = typer.Typer(no_args_is_help=True, help="JSONB→column promotions: run the backfill, NULL rates, rejects.")
app.add_typer(backfill_app, name="backfill")
PromotionNames = Annotated[Optional[list[str]], typer.Argument(help="Promotions, by column name (default: all).", show_default=False)]


@backfill_app.command("run")
def backfill_run(
    names: PromotionNames = None,
    batch_time: Annotated[str, typer.Option("--batch-time", help="Target duration of one batch; the batch size adapts to it.")] = "200ms",
    sleep: Annotated[str, typer.Option("--sleep", help="Pause between batches (throttling).")] = "0s",
    lock_timeout: Annotated[str, typer.Option("--lock-timeout", help="How long a batch may wait for a row lock before it is retried smaller.")] = "200ms",
    statement_timeout: Annotated[str, typer.Option("--statement-timeout", help="Longest a single batch may run.")] = "60s",
    restart: Annotated[bool, typer.Option("--restart", help="Start a new pass from the first page even if one finished.")] = False,
    retry_rejects: Annotated[bool, typer.Option("--retry-rejects", help="Forget recorded rejects and try those rows again (a new pass).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Fill the promoted columns from their JSON keys in committed batches; rerun to resume."""
    options = backfill_module.BackfillOptions.from_params({
        "batch_time": batch_time, "sleep": sleep, "lock_timeout": lock_timeout,
        "statement_timeout": statement_timeout, "restart": restart, "retry_rejects": retry_rejects,
    })
    try:
        if json_out:
            result = backfill_module.run(settings(), names, options)
        else:
            with console.BackfillBar() as bar:
                result = backfill_module.run(settings(), names, options, on_progress=bar)
    except KeyboardInterrupt:
        raise TrackschemaError("interrupted: committed batches are kept; run `trackschema backfill run` again to resume", exit_code=130) from None
    if json_out:
        console.print_json(result.to_dict())
    else:
        console.print_backfill_result(result)


@backfill_app.command("progress")
def backfill_progress(
    names: PromotionNames = None,
    fail_above: Annotated[Optional[str], typer.Option("--fail-above", help="Exit 1 when a NULL rate is above RATE (0.01 or 1%).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Per promotion: rows with the key, filled, rejected, and the NULL rate."""
    rate = progress_module.parse_rate(fail_above) if fail_above is not None else None
    rows = progress_module.progress(settings(), names)
    if json_out:
        console.print_json([r.to_dict() for r in rows])
    else:
        console.print_promotion_progress(rows)
    if rate is not None:
        failing = progress_module.above(rows, rate)
        if failing:
            console.error("NULL rate above " + f"{rate:.2%}: " + ", ".join(f"{r.name} {r.null_rate:.2%}" for r in failing)
                          + " (run `trackschema backfill run`)")
            raise typer.Exit(1)


@backfill_app.command("rejects")
def backfill_rejects(
    name: Annotated[str, typer.Argument(help="The promotion (column name).")],
    limit: Annotated[int, typer.Option("--limit", help="How many rejects to show.")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Rows whose JSON value could not be promoted, and why (newest first)."""
    listing = progress_module.rejects(settings(), name, limit)
    if json_out:
        console.print_json([r.to_dict() for r in listing.rejects])
    else:
        console.print_rejects(listing)


# --- end issue 3 ---------------------------------------------------------------------------


# --- issue 4: ingest (keep additions inside this block) ----------------------------------


# --- end issue 4 ---------------------------------------------------------------------------


# --- issue 5: partitions (keep additions inside this block) ------------------------------


# --- end issue 5 ---------------------------------------------------------------------------


# --- issue 6: jobs schedule, matviews (keep additions inside this block) -----------------


# --- end issue 6 ---------------------------------------------------------------------------


# --- issue 7: audits (keep additions inside this block) ----------------------------------


# --- end issue 7 ---------------------------------------------------------------------------


def main() -> None:
    """Entry point: run the app; user errors become one line and exit code 2."""
    try:
        app()
    except TrackschemaError as exc:
        if OPTIONS.verbose:
            raise
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
