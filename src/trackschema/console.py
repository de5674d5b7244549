"""All Rich rendering. Nothing else in trackschema imports rich.

Functions take the plain data other modules return and print it for people; `print_json`
prints it for scripts. Errors go to stderr as one line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_text(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)


def warning(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


def info(message: str) -> None:
    out.print(message, soft_wrap=True)


def _human_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def print_migration(result: Any) -> None:
    if not result.applied:
        out.print(f"Nothing to do: the database is at {', '.join(result.after) or 'base'}.")
        return
    table = Table(title=f"{result.direction} to {result.target}")
    table.add_column("from")
    table.add_column("to")
    table.add_column("revision")
    for step in result.applied:
        table.add_row(step["from"], step["to"], step["description"].splitlines()[0] if step["description"] else "")
    out.print(table)
    out.print(f"Database now at [bold]{', '.join(result.after) or 'base'}[/].")


def print_revisions(revisions: list[Any], *, title: str, current: list[str] | None = None) -> None:
    table = Table(title=title)
    table.add_column("revision", style="bold")
    table.add_column("down revision")
    table.add_column("description")
    table.add_column("")
    for rev in revisions:
        marks = []
        if rev.is_head:
            marks.append("head")
        if current and rev.revision in current:
            marks.append("current")
        table.add_row(rev.revision, rev.down_revision or "base", rev.description.splitlines()[0] if rev.description else "", ", ".join(marks))
    out.print(table)


def print_current(database: str, current: list[str]) -> None:
    out.print(f"{database}: [bold]{', '.join(current) or 'base (no revision applied)'}[/]")


def print_status(page: Any) -> None:
    rev = page.revisions
    state = "[green]up to date[/]" if rev.up_to_date else f"[yellow]{len(rev.pending)} pending[/]"
    out.print(f"[bold]Database[/] {rev.database}")
    out.print(f"[bold]Revision[/] {', '.join(rev.current) or 'base'} (head {', '.join(rev.heads)}): {state}")
    if rev.pending:
        print_revisions(rev.pending, title="Pending revisions (oldest first)")
    if page.invalid_indexes:
        table = Table(title="Invalid indexes (a failed CONCURRENTLY build; drop and rebuild)")
        table.add_column("table")
        table.add_column("index")
        for idx in page.invalid_indexes:
            table.add_row(idx.table, idx.index)
        out.print(table)
    else:
        out.print("[bold]Invalid indexes[/] none")
    if page.largest_tables:
        table = Table(title="Largest tables")
        table.add_column("table")
        table.add_column("rows (est.)", justify="right")
        table.add_column("size", justify="right")
        for t in page.largest_tables:
            table.add_row(t.table, f"{t.rows_estimate:,}", _human_bytes(t.total_bytes))
        out.print(table)
    if getattr(page, "promotions", None):
        print_promotion_stages(page.promotions)  # issue 3


def print_sandbox(info: Any) -> None:
    verb = "Started" if info.created else "Already running:"
    out.print(f"{verb} {info.detail}")
    out.print(f"URL: [bold]{info.url}[/]")
    out.print(f"Use it: export TRACKSCHEMA_DATABASE_URL={info.url}")


def demo_step(step: Any) -> None:
    out.print(f"[green]✓[/] [bold]{step.title}[/] — {step.detail} [dim]({step.seconds:.2f}s)[/]")


def print_demo_end(result: Any) -> None:
    if result.status is not None:
        out.rule("status")
        print_status(result.status)
    out.rule()
    out.print(f"The demo database stays in the sandbox: [bold]export TRACKSCHEMA_DATABASE_URL={result.url}[/]")
    out.print("Then try: trackschema status · trackschema history · stop it with: trackschema sandbox stop")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "never"


def print_jobs(infos: list[Any]) -> None:
    table = Table(title="Jobs")
    table.add_column("job", style="bold")
    table.add_column("schedule (UTC cron)")
    table.add_column("last run")
    table.add_column("last status")
    table.add_column("what it does")
    for i in infos:
        colour = {"succeeded": "green", "failed": "red", "running": "yellow"}.get(i.last_status or "", "dim")
        table.add_row(i.name, i.schedule, _when(i.last_run), f"[{colour}]{i.last_status or '-'}[/]", i.description)
    out.print(table)


def print_job_run(run: Any) -> None:
    colour = "green" if run.status == "succeeded" else "red"
    seconds = f" in {run.seconds:.2f}s" if run.seconds is not None else ""
    out.print(f"job [bold]{run.job}[/] [{colour}]{run.status}[/]{seconds} (run {run.id})")
    if run.result:
        out.print_json(data=run.result)
    if run.error:
        out.print(f"[red]{run.error}[/]")


def print_job_history(runs: list[Any]) -> None:
    table = Table(title="Job runs (newest first)")
    for column in ("run", "job", "started", "seconds", "status", "error"):
        table.add_column(column)
    for r in runs:
        table.add_row(str(r.id), r.job, _when(r.started_at), f"{r.seconds:.2f}" if r.seconds is not None else "-", r.status, (r.error or "")[:80])
    out.print(table)


# --- issue 8 rendering (keep additions inside this block) --------------------------------


# --- end issue 8 ---------------------------------------------------------------------------


# --- issue 3 rendering (keep additions inside this block) --------------------------------

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn  # noqa: E402

_STAGE_STYLE = {
    "absent": "dim", "expanded": "yellow", "backfilling": "yellow", "backfilled": "cyan",
    "validated": "cyan", "switched": "green", "contracted": "green",
}


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class BackfillBar:
    """A Rich progress bar fed by the backfill engine's progress callback: rows done of the
    exact total counted at the start, rows still to go, rejects, batch size, rate and ETA."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows · {task.fields[remaining]:,} to go · "
                       "{task.fields[rejected]:,} rejected · batch {task.fields[pages]} pages · "
                       "{task.fields[rate]} rows/s · ETA {task.fields[eta]}"),
            console=out, transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "BackfillBar":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, p: Any) -> None:
        fields = {
            "remaining": p.rows_remaining, "rejected": p.rows_rejected, "pages": p.batch_pages,
            "rate": f"{p.rows_per_second:,.0f}" if p.rows_per_second else "?", "eta": _eta(p.eta_seconds),
        }
        if p.table not in self.tasks:
            self.tasks[p.table] = self.progress.add_task(p.table, total=max(p.rows_total, 1), **fields)
        task = self.tasks[p.table]
        total = max(p.rows_total, p.rows_done, 1)
        done = total if p.finished else min(p.rows_done, total)
        self.progress.update(task, total=total, completed=done, **fields)


def print_backfill_result(result: Any) -> None:
    for t in result.tables:
        if t.status == "nothing to do":
            out.print(f"[bold]{t.table}[/]: nothing to do ({', '.join(t.promotions)}: every pass is complete; --restart starts a new one)")
        else:
            rate = f", {t.rows_per_second:,.0f} rows/s" if t.rows_per_second else ""
            resumed = f", resumed {', '.join(t.resumed)}" if t.resumed else ""
            out.print(
                f"[bold]{t.table}[/]: [green]{t.status}[/] — {t.rows_done:,} rows done in {t.batches} batches "
                f"({t.seconds:.1f}s{rate}{resumed}), {t.rows_rejected:,} with a value that cannot be promoted, "
                f"{t.retries} retried batches"
            )
        for w in t.warnings:
            warning(w)
    out.print("See `trackschema backfill progress` for NULL rates and `trackschema backfill rejects NAME` for rejects.")


def _rate_cell(rate: float) -> str:
    colour = "green" if rate == 0 else ("yellow" if rate <= 0.01 else "red")
    return f"[{colour}]{rate:.2%}[/]"


def print_promotion_progress(rows: list[Any]) -> None:
    table = Table(title="Promotion NULL rates (rows with the key: filled, rejected, still NULL)")
    for column, justify in (("promotion", "left"), ("column", "left"), ("with key", "right"), ("filled", "right"),
                            ("rejected", "right"), ("NULL", "right"), ("NULL rate", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.name, f"{r.table}.{r.column}", f"{r.eligible:,}", f"{r.filled:,}", f"{r.rejected:,}",
                      f"{r.unfilled:,}", _rate_cell(r.null_rate))
    out.print(table)


def print_rejects(listing: Any) -> None:
    if not listing.rejects:
        out.print(f"No rejects for {listing.promotion}.")
        return
    table = Table(title=f"Rejects of {listing.promotion} (showing {len(listing.rejects)} of {listing.total:,}, newest first)")
    for column in ("row id", "value", "reason", "last seen"):
        table.add_column(column)
    for r in listing.rejects:
        table.add_row(r.row_id, json.dumps(r.value)[:60], r.reason, _when(r.last_seen))
    out.print(table)


def print_promotion_stages(stages: list[Any]) -> None:
    table = Table(title="Promotions (stage from the catalog and the data)")
    for column, justify in (("promotion", "left"), ("from", "left"), ("stage", "left"), ("done", "right"),
                            ("NULL rate", "right"), ("rejected", "right"), ("detail", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in stages:
        style = _STAGE_STYLE.get(s.stage, "")
        table.add_row(
            f"{s.table}.{s.column}", s.source, f"[{style}]{s.stage}[/]" if style else s.stage,
            f"{s.percent:.1f}%" if s.percent is not None else "-",
            _rate_cell(s.progress.null_rate) if s.progress else "-",
            f"{s.progress.rejected:,}" if s.progress else "-", s.detail,
        )
    out.print(table)


# --- end issue 3 ---------------------------------------------------------------------------


# --- issue 4 rendering (keep additions inside this block) --------------------------------


# --- end issue 4 ---------------------------------------------------------------------------


# --- issue 5 rendering (keep additions inside this block) --------------------------------


# --- end issue 5 ---------------------------------------------------------------------------


# --- issue 6 rendering (keep additions inside this block) --------------------------------


# --- end issue 6 ---------------------------------------------------------------------------


# --- issue 7 rendering (keep additions inside this block) --------------------------------


# --- end issue 7 ---------------------------------------------------------------------------
