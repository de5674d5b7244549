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
    print_partition_health(getattr(page, "partitions", []))
    if page.largest_tables:
        table = Table(title="Largest tables")
        table.add_column("table")
        table.add_column("rows (est.)", justify="right")
        table.add_column("size", justify="right")
        for t in page.largest_tables:
            table.add_row(t.table, f"{t.rows_estimate:,}", _human_bytes(t.total_bytes))
        out.print(table)


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


# --- end issue 3 ---------------------------------------------------------------------------


# --- issue 4 rendering (keep additions inside this block) --------------------------------


# --- end issue 4 ---------------------------------------------------------------------------


# --- issue 5 rendering (keep additions inside this block) --------------------------------


def _bound(value: Any, unbounded: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else unbounded


def print_partitions(infos: list[Any]) -> None:
    if not infos:
        out.print("No partitioned tables.")
        return
    table = Table(title="Partitions (bounds in UTC; a row belongs where from <= key < to)")
    for column, justify in (("parent", "left"), ("partition", "left"), ("from", "left"), ("to", "left"), ("rows", "right"), ("size", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for p in infos:
        name = p.partition + (" [yellow](default)[/]" if p.is_default else "") + (" [red](detach pending)[/]" if p.detach_pending else "")
        rows = f"{'~' if p.rows_estimated else ''}{p.rows:,}"
        if p.is_default and p.rows:
            rows = f"[yellow]{rows}[/]"
        table.add_row(p.parent, name, "default" if p.is_default else _bound(p.lower, "-∞"), "" if p.is_default else _bound(p.upper, "+∞"), rows, _human_bytes(p.bytes))
    out.print(table)


def print_ensured(created: list[Any]) -> None:
    if not created:
        out.print("Every partitioned table already has its partitions: nothing created.")
        return
    table = Table(title="Partitions created")
    for column in ("parent", "partition", "from", "to", "rows moved from default"):
        table.add_column(column)
    for c in created:
        table.add_row(c.parent, c.partition, _bound(c.lower, "-∞"), _bound(c.upper, "+∞"), f"{c.rows_moved:,}")
    out.print(table)


def print_retired(result: Any) -> None:
    cutoff = result.cutoff.strftime("%Y-%m-%d %H:%M:%S %Z")
    if not result.partitions:
        out.print(f"No partition lies entirely before {cutoff}: nothing to retire.")
        return
    verb = "Would retire" if result.dry_run else "Retired"
    table = Table(title=f"{verb} (every row older than {cutoff})" + (" — dry run, nothing changed" if result.dry_run else ""))
    for column in ("parent", "partition", "from", "to", "rows", "size", "action"):
        table.add_column(column)
    for p in result.partitions:
        action = f"archive → {p.destination}" if p.action == "archive" else "drop"
        table.add_row(p.parent, p.partition, _bound(p.lower, "-∞"), _bound(p.upper, "+∞"), f"{p.rows:,}", _human_bytes(p.bytes), action)
    out.print(table)


def print_partition_health(items: list[Any]) -> None:
    """The status page's partition section."""
    if not items:
        return
    table = Table(title="Partitioned tables")
    for column in ("table", "key", "partitions", "months ahead", "default partition rows", "note"):
        table.add_column(column)
    for h in items:
        notes = []
        if h.state != "partitioned":
            notes.append(f"[red]conversion {h.state}: run trackschema upgrade head[/]")
        if h.state == "partitioned" and h.months_ahead < 1:
            notes.append("[red]no partition for next month: run trackschema partitions ensure[/]")
        if h.default_rows:
            notes.append("[yellow]rows outside every range: run trackschema partitions ensure[/]")
        if h.detach_pending:
            notes.append(f"[red]detach pending: {', '.join(h.detach_pending)} (rerun partitions retire)[/]")
        ahead = "[green]" if h.months_ahead >= h.months_ahead_wanted else "[yellow]" if h.months_ahead >= 1 else "[red]"
        default = "-" if h.default_partition is None else f"{h.default_rows:,}"
        table.add_row(h.parent, h.key, str(h.partitions), f"{ahead}{h.months_ahead}[/] of {h.months_ahead_wanted}", default, "; ".join(notes) or "[green]ok[/]")
    out.print(table)



# --- end issue 5 ---------------------------------------------------------------------------


# --- issue 6 rendering (keep additions inside this block) --------------------------------


# --- end issue 6 ---------------------------------------------------------------------------


# --- issue 7 rendering (keep additions inside this block) --------------------------------


# --- end issue 7 ---------------------------------------------------------------------------
