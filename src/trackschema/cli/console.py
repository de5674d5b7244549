"""All Rich rendering. Nothing else in trackschema imports rich.

Functions take the plain data other modules return and print it for people; `print_json`
prints it for scripts. Errors go to stderr as one line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def show(data: Any, json_out: bool, render: Callable[[Any], None]) -> None:
    """What every read command prints: with `--json` the data's `to_dict()` (each item's, for
    a list), else the human rendering `render(data)`."""
    if json_out:
        print_json([item.to_dict() for item in data] if isinstance(data, list) else data.to_dict())
    else:
        render(data)


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
    if getattr(page, "citus", None) is not None:
        print_citus_nodes(page.citus)
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
        table.add_column("growth / day", justify="right")
        for t in page.largest_tables:
            growth = "-" if t.growth_bytes_per_day is None else ("+" if t.growth_bytes_per_day >= 0 else "-") + _human_bytes(int(abs(t.growth_bytes_per_day)))
            table.add_row(t.table, f"{t.rows_estimate:,}", _human_bytes(t.total_bytes), growth)
        out.print(table)
    if getattr(page, "matviews", None):
        print_matviews(page.matviews)  # issue 6 block below
    if getattr(page, "queue", None) is not None:
        q = page.queue
        counts = ", ".join(f"{status} {count:,}" for status, count in q.by_status.items())
        oldest = "none waiting" if q.oldest_pending_seconds is None else f"oldest unfinished {q.oldest_pending_seconds:,.0f}s old"
        colour = "red" if q.by_status.get("dead") else "green"
        out.print(f"[bold]Queue[/] [{colour}]{counts}[/]; {oldest}; {q.expired_leases} expired leases (see trackschema queue stats)")
    if getattr(page, "promotions", None):
        print_promotion_stages(page.promotions)  # issue 3


def print_citus_nodes(citus: Any) -> None:
    """status on Citus: the version and one row per node."""
    if not citus.nodes:
        out.print(f"[bold]Citus[/] {citus.version}: no nodes registered (citus_set_coordinator_host, citus_add_node)")
        return
    workers = sum(1 for n in citus.nodes if n.role == "worker")
    table = Table(title=f"Citus {citus.version}: {len(citus.nodes)} node(s), {workers} worker(s)")
    for column, justify in (("node", "left"), ("role", "left"), ("active", "left"), ("shards", "right"), ("size", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for n in citus.nodes:
        active = "[green]yes[/]" if n.active else "[red]no[/]"
        size = _human_bytes(n.database_bytes) if n.database_bytes is not None else f"[red]unreachable: {n.error}[/]"
        table.add_row(n.node, n.role, active, f"{n.shards:,}", size)
    out.print(table)
    if citus.outbox_distributed:
        out.print("[bold]Queue[/] entity_events is distributed: the outbox consumers (queue work/status) are refused here (docs/citus.md#outbox)")


def print_sandbox(info: Any) -> None:
    verb = "Started" if info.created else "Already running:"
    out.print(f"{verb} {info.detail}", soft_wrap=True)
    for node in getattr(info, "nodes", None) or []:
        out.print(f"  {node['name']:<12} {node['url']}  [dim]{node['directory']}[/]", soft_wrap=True)
    out.print(f"URL: [bold]{info.url}[/]")
    out.print(f"Use it: export TRACKSCHEMA_DATABASE_URL={info.url}")


def demo_step(step: Any) -> None:
    out.print(f"[green]✓[/] [bold]{step.title}[/] — {step.detail} [dim]({step.seconds:.2f}s)[/]")


def print_demo_end(result: Any) -> None:
    if result.status is not None:
        out.rule("status")
        print_status(result.status)
    out.rule()
    if result.sandbox_stopped:
        out.print("The sandbox was stopped and removed. Run `trackschema demo` without --stop to keep it for exploring.")
        return
    out.print("The demo database stays in the sandbox. To explore it:", soft_wrap=True)
    out.print(f"  export TRACKSCHEMA_DATABASE_URL={result.url}", soft_wrap=True)
    out.print("  trackschema status · trackschema history · trackschema jobs list", soft_wrap=True)
    out.print("Stop it with: trackschema sandbox stop", soft_wrap=True)


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


def print_trigger_findings(findings: list[Any]) -> None:
    """One block per finding; the fix SQL on a line of its own, unwrapped, to copy."""
    from rich.markup import escape

    if not findings:
        out.print("[green]No trigger findings:[/] every updated_at is maintained once, tracking is current, no unused trigger function.")
        return
    out.print(f"[bold]Trigger audit: {len(findings)} finding(s)[/]")
    for f in findings:
        out.print(f"[bold yellow]{f.kind}[/] {escape(f.table)}".rstrip(), soft_wrap=True)
        out.print(f"  {escape(f.detail)}", soft_wrap=True)
        out.print(f"  fix: [cyan]{escape(f.fix)}[/]", soft_wrap=True)


def print_queue_stats(stats: Any) -> None:
    """`queue status` / `queue stats`: each consumer's lag, then totals and dead events."""
    from rich.markup import escape
    consumers = getattr(stats, "consumers", None) or []
    if consumers:
        table = Table(title="Consumers of the entity_events outbox")
        for column, justify in (("consumer", "left"), ("lag (events)", "right"), ("lag (s)", "right"), ("handled", "right"),
                                ("retrying", "right"), ("dead", "right"), ("worker", "left"), ("handler", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for c in consumers:
            lag_colour = "green" if c.lag_events == 0 else ("yellow" if c.lag_seconds < 60 else "red")
            table.add_row(escape(c.name), f"[{lag_colour}]{c.lag_events:,}[/]", f"[{lag_colour}]{c.lag_seconds:,.1f}[/]",
                          f"{c.handled:,}", f"{c.retry_pending + c.retry_processing:,}",
                          f"[red]{c.dead:,}[/]" if c.dead else "0", "active" if c.worker_active else "-",
                          escape(c.handler or ""))
        out.print(table)
    else:
        table = Table(title="event_queue")
        table.add_column("status")
        table.add_column("events", justify="right")
        for status, count in stats.by_status.items():
            colour = "red" if status == "dead" and count else ""
            table.add_row(status, f"[{colour}]{count:,}[/]" if colour else f"{count:,}")
        out.print(table)
    age = "none" if stats.oldest_pending_seconds is None else f"{stats.oldest_pending_seconds:,.1f}s"
    counts = ", ".join(f"{status} {count:,}" for status, count in stats.by_status.items())
    out.print(f"{counts} · ready now: {stats.ready:,} · expired leases: {stats.expired_leases:,} · oldest waiting event: {age}")
    if stats.recent_dead:
        dead = Table(title="Most recent dead events")
        for column in ("id", "consumer", "event type", "attempts", "failed", "last error"):
            dead.add_column(column)
        for d in stats.recent_dead:
            dead.add_row(str(d.id), escape(getattr(d, "consumer", "") or ""), escape(d.event_type), str(d.attempts), _when(d.failed_at),
                         escape((d.last_error or "")[:120]))
        out.print(dead)


def print_unregistered(result: Any) -> None:
    from rich.markup import escape
    out.print(f"consumer [bold]{escape(result.consumer)}[/] unregistered" if result.existed
              else f"no consumer named [bold]{escape(result.consumer)}[/]")


def print_work_result(result: Any) -> None:
    from rich.markup import escape

    consumer = getattr(result, "consumer", None)
    out.print(
        f"worker [bold]{escape(result.worker)}[/]" + (f" of consumer [bold]{escape(consumer)}[/]" if consumer else "")
        + f" ({escape(result.handler)}): {result.batches} batches, {result.claimed:,} read, "
        f"[green]{result.completed:,} handled[/], {result.failed:,} failed attempts, "
        f"[red]{result.dead:,} dead[/], {getattr(result, 'parked', 0):,} waiting behind a failure of their entity, "
        f"{result.lost:,} dropped (another worker had moved on), "
        f"{result.seconds:.2f}s ({result.events_per_second:,.0f} events/s)"
    )


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


from rich.progress import DownloadColumn, TimeElapsedColumn  # noqa: E402


@contextmanager
def ingest_progress(total_bytes: int | None, *, enabled: bool = True) -> Iterator[Callable[[int, Any], None]]:
    """A progress bar on stderr (when it is a terminal) fed with (bytes read, running summary)."""
    if not enabled or not err.is_terminal:
        yield lambda _bytes, _summary: None
        return
    columns = [TextColumn("[bold]ingest[/]"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[counts]}")]
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("ingest", total=total_bytes, counts="")

        def advance(nbytes: int, summary: Any) -> None:
            progress.update(task, advance=nbytes,
                            counts=f"{summary.batches:,} batches · {summary.accepted:,} accepted · {summary.rejected:,} rejected"
                                   f" · {summary.events_per_second:,.0f} events/s")

        yield advance


def print_ingest_summary(summary: Any, show_rejects: int = 10) -> None:
    colour = "green" if not summary.rejected else "yellow"
    out.print(
        f"[bold]{summary.source}[/]: {summary.batches:,} batches, {summary.events:,} events: "
        f"[{colour}]{summary.accepted:,} accepted, {summary.rejected:,} rejected[/] "
        f"in {summary.seconds:.2f}s ({summary.events_per_second:,.0f} events/s)"
    )
    out.print(
        f"sessions {summary.sessions_new:,} new, {summary.sessions_updated:,} updated · "
        f"page views {summary.page_views:,} · clicks {summary.clicks:,}"
        + (f" · {summary.duplicates:,} duplicates refused" if getattr(summary, "duplicates", 0) else "")
        + (f" · {summary.transactions:,} transactions" if getattr(summary, "transactions", 0) else "")
    )
    if summary.rejects and show_rejects > 0:
        table = Table(title="Rejected (all are kept in trackschema.analytics_ingest_rejects)")
        table.add_column("line", justify="right")
        table.add_column("event", justify="right")
        table.add_column("reason")
        for r in summary.rejects[:show_rejects]:
            table.add_row(str(r.line) if r.line is not None else "-", str(r.index) if r.index is not None else "batch", r.reason)
        out.print(table)
        if summary.rejected > show_rejects:
            out.print(f"… and {summary.rejected - show_rejects:,} more")


def print_dashboard(board: Any) -> None:
    totals = board.totals
    out.print(
        f"[bold]{board.user_code}[/] {board.first} … {board.last} (UTC): {totals['sessions']:,} sessions, "
        f"{totals['page_views']:,} page views, {totals['clicks']:,} clicks "
        f"[dim]({totals['days_from_rollups']} days from roll-ups, {totals['days_from_raw']} from raw rows)[/]"
    )
    days = Table(title="Per day")
    for column in ("day", "sessions", "page views", "clicks", "share codes", "source"):
        days.add_column(column, justify="right" if column in {"sessions", "page views", "clicks"} else "left")
    for d in board.days:
        days.add_row(str(d.day), f"{d.total_sessions:,}", f"{d.total_page_views:,}", f"{d.total_clicks:,}",
                     ", ".join(d.unique_share_codes), d.source)
    out.print(days)
    if board.pages:
        pages = Table(title="Pages")
        pages.add_column("page type")
        pages.add_column("views", justify="right")
        for p in board.pages:
            pages.add_row(p.page_type, f"{p.view_count:,}")
        out.print(pages)
    if board.clicks:
        clicks = Table(title="Click targets")
        for column in ("target", "category", "clicks"):
            clicks.add_column(column, justify="right" if column == "clicks" else "left")
        for c in board.clicks:
            clicks.add_row(c.click_target, c.click_category or "", f"{c.click_count:,}")
        out.print(clicks)
    if board.shares:
        shares = Table(title="Share codes")
        for column in ("share code", "sessions", "page views", "clicks"):
            shares.add_column(column, justify="left" if column == "share code" else "right")
        for s in board.shares:
            shares.add_row(s.share_code or "(none)", f"{s.total_sessions:,}", f"{s.total_page_views:,}", f"{s.total_clicks:,}")
        out.print(shares)


def print_legacy_restore(result: Any) -> None:
    out.print(
        f"{result.restored:,} legacy rows back in analytics_events in {result.batches} batches; removed "
        f"{result.page_views_removed:,} page views, {result.clicks_removed:,} clicks, {result.sessions_removed:,} sessions. "
        "The affected days are marked dirty: run `trackschema jobs run aggregate-daily`."
    )



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


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d {int(seconds % 86400 // 3600):02d}h"


def print_matviews(views: list[Any]) -> None:
    """Materialized views: last refresh, age, how, and whether CONCURRENTLY is possible."""
    table = Table(title="Materialized views (refresh-matviews)")
    for column in ("view", "last refresh (UTC)", "age", "took", "mode", "size", "note"):
        table.add_column(column, justify="right" if column in ("age", "took", "size") else "left")
    for v in views:
        notes = []
        if not v.registered:
            notes.append("[yellow]not refreshed by refresh-matviews[/]")
        if not v.populated:
            notes.append("[yellow]not populated[/]")
        if v.concurrent_key is None:
            notes.append("[red]no unique index: cannot refresh CONCURRENTLY[/]")
        if v.last_error:
            notes.append(f"[red]last error: {v.last_error[:80]}[/]")
        table.add_row(
            v.view, _when(v.refreshed_at), _age(v.age_seconds),
            f"{v.refresh_seconds:.2f}s" if v.refresh_seconds is not None else "-",
            v.refresh_mode or "-", _human_bytes(v.total_bytes), "; ".join(notes),
        )
    out.print(table)


def print_schedule(result: Any) -> None:
    """What `jobs schedule` registered with pg_cron, and the crontab lines to install."""
    if result.pg_cron:
        cron = result.pg_cron
        made = ", extension created" if cron.created_extension else ""
        out.print(f"pg_cron {cron.version} (jobs kept in database [bold]{cron.database}[/]{made}) runs jobs in [bold]{result.database}[/]")
    elif result.crontab_only:
        out.print(f"Crontab lines for every job of [bold]{result.database}[/] (--crontab: nothing was changed)")
    else:
        out.print(f"pg_cron is not loaded on this server: install the crontab lines below to run the jobs of [bold]{result.database}[/]")
    table = Table(title="Job schedules (UTC)")
    for column in ("job", "schedule", "runner", "action", "command"):
        table.add_column(column)
    colours = {"created": "green", "updated": "yellow", "unchanged": "dim", "print": "cyan"}
    for j in result.jobs:
        table.add_row(j.job, j.schedule, j.runner, f"[{colours.get(j.action, 'white')}]{j.action}[/]", j.command)
    if result.jobs:
        out.print(table)
    for name in result.removed:
        out.print(f"[yellow]unscheduled[/] pg_cron job {name}")
    if result.crontab:
        out.rule("crontab (crontab -e); jobs that exist only in Python" if result.pg_cron else "crontab (crontab -e)")
        sys.stdout.write(result.crontab)



# --- end issue 6 ---------------------------------------------------------------------------


# --- issue 7 rendering (keep additions inside this block) --------------------------------


def print_findings(findings: list[Any], *, title: str) -> None:
    if not findings:
        out.print(f"[green]{title}: no findings[/]")
        return
    table = Table(title=f"{title}: {len(findings)} finding(s)", show_lines=True)
    table.add_column("kind", style="bold")
    table.add_column("table")
    table.add_column("index")
    table.add_column("why")
    table.add_column("fix", style="cyan")
    for f in findings:
        table.add_row(f.kind, f.table, f.index or "-", f.detail, f.fix)
    out.print(table)


def print_jsonb_report(report: Any) -> None:
    if not report.available:
        out.print(f"[yellow]pg_stat_statements is not available:[/] {report.how_to_enable}")
        return
    if not report.candidates:
        out.print("No JSONB key appears in WHERE or JOIN conditions of the recorded statements.")
        return
    table = Table(title="JSONB columns in WHERE/JOIN conditions (promotion candidates, most called first)")
    for column in ("table", "column", "calls", "statements", "common keys (share of rows)", "example"):
        table.add_column(column)
    for c in report.candidates:
        table.add_row(c.table, c.column, f"{c.calls:,}", str(c.statements), c.key, c.example[:80])
    out.print(table)
    out.print("[dim]pg_stat_statements normalizes constants, so the keys are sampled from the data: confirm them in the application's queries.[/]")


# --- end issue 7 ---------------------------------------------------------------------------


# --- plan (issue 17) rendering ---

import re  # noqa: E402 - kept inside the issue-17 block


def _held(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


_BLOCKS_STYLE = {"reads and writes": "red", "reads": "red", "writes": "yellow", "nothing": "green"}
_BLOCKS_RANK = {"nothing": 0, "writes": 1, "reads": 2, "reads and writes": 3}
_WEAK_MODES = {"ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE"}  # block no reads, no writes, no VACUUM
_QUALIFIED_CALL = re.compile(r'^SELECT\s+"?[A-Za-z_][\w$]*"?\.(?="?[A-Za-z_][\w$]*"?\()')


def _plan_rows(statement: Any) -> tuple[list[tuple[Any, int]], int]:
    """The locks of `statement` worth a row, each with the number of its table's indexes
    rewritten alongside it; and how many weak locks were left out. An index's lock folds into
    its table's row when the table's lock blocks as much; weak modes are left out unless the
    relation was rewritten."""
    tables = {lock.relation: lock for lock in statement.locks if lock.table is None}
    folded: dict[str, int] = {}
    rows, weak = [], 0
    for lock in statement.locks:
        owner = tables.get(lock.table) if lock.table is not None else None
        if owner is not None and _BLOCKS_RANK.get(lock.blocks, 0) <= _BLOCKS_RANK.get(owner.blocks, 0) \
                and (owner.rewritten or not lock.rewritten):
            folded[owner.relation] = folded.get(owner.relation, 0) + (1 if lock.rewritten else 0)
            continue
        if lock.mode in _WEAK_MODES and not lock.rewritten:
            weak += 1
            continue
        rows.append(lock)
    weak += sum(1 for lock in statement.locks if lock.table is not None and lock.table in tables
                and tables[lock.table].mode in _WEAK_MODES and not tables[lock.table].rewritten)
    return [(lock, folded.get(lock.relation, 0)) for lock in rows], weak


def print_plan(result: Any) -> None:
    """`trackschema plan`: per revision, one row per lock that blocks reads, writes or DDL (or
    rewrites); an index's lock folds into its table's row; weaker locks and statements without
    locks are counted (`--json` has every one)."""
    from rich.markup import escape

    now = ", ".join(result.current) or "base"
    if not result.revisions:
        out.print(f"Nothing pending: {escape(result.database)} is at [bold]{escape(now)}[/] (target {escape(result.target)}).")
        return
    sampled = ", ".join(f"{escape(name)} {count:,}" for name, count in result.sampled.items()) or "none"
    out.print(
        f"[bold]Plan[/] {escape(result.database)}: {escape(now)} → {escape(result.target)}, {len(result.revisions)} revision(s), "
        f"rehearsed in a scratch database (dropped) in {result.seconds.get('total', 0.0):.1f}s; "
        f"rows sampled (up to {result.sample_rows:,} per table, plus the rows they reference): {sampled}",
        soft_wrap=True,
    )
    for text in result.warnings:
        warning(text)
    quiet = weak_total = 0
    second_session = False
    for revision in result.revisions:
        rows: list[tuple[str, str, str, str, str, str, str, str]] = []  # plain text; styled when added
        for statement in revision.statements:
            shown, weak = _plan_rows(statement)
            weak_total += weak
            if not shown:
                quiet += 1
                continue
            mark = "*" if statement.observed == "second session" else ""
            second_session = second_session or bool(mark)
            for n, (lock, indexes) in enumerate(shown):
                rows.append((
                    str(statement.index) if n == 0 else "", statement.sql_excerpt if n == 0 else "", lock.relation,
                    (lock.mode or "-") + mark, lock.blocks, _held(lock.held_seconds),
                    ("yes" + (f" +{indexes} idx" if indexes else "")) if lock.rewritten else "",
                    "?" if lock.target_bytes is None else _human_bytes(lock.target_bytes),
                ))
        if not rows:
            out.print(f"[bold]{escape(revision.revision)}[/]: {len(revision.statements)} statement(s), none blocks reads, writes or DDL")
            continue
        headers = ("#", "statement", "relation", "lock", "blocks", "held", "rewrite", "on target")
        keep = [i for i in range(len(headers)) if i != 6 or any(row[6] for row in rows)]  # no rewrite column without a rewrite
        widths = {i: max(len(headers[i]), *(len(row[i]) for row in rows)) for i in keep}
        # one line per row: the statement is cut to what the terminal leaves (--json has it whole)
        room = out.width - sum(w for i, w in widths.items() if i != 1) - 3 * len(keep) - 1
        cut = max(12, min(60, room))
        table = Table(title=f"[bold]{escape(revision.revision)}[/]: locks on existing relations, held until the transaction commits",
                      title_justify="left")
        for i in keep:
            table.add_column(headers[i], justify="right" if headers[i] in ("#", "held", "on target") else "left", no_wrap=True)
        for row in rows:
            cells = list(row)
            cells[1] = _QUALIFIED_CALL.sub("SELECT ", cells[1])  # SELECT schema.fn(...): the function's name is the news
            cells[1] = cells[1] if len(cells[1]) <= cut else cells[1][: cut - 1] + "…"
            styled = [escape(c) for c in cells]
            style = _BLOCKS_STYLE.get(row[4], "")
            styled[4] = f"[{style}]{row[4]}[/]" if style else row[4]
            styled[6] = f"[red]{row[6]}[/]" if row[6] else ""
            table.add_row(*(styled[i] for i in keep))
        out.print(table)
    if second_session:
        out.print("[dim]* seen from a second session: the statement cannot run in a transaction block; held at most for its duration[/]")
    out.print(f"[dim]Not shown: {quiet} statement(s) without such a lock, {weak_total} ACCESS SHARE / ROW SHARE / ROW EXCLUSIVE lock(s) "
              "(they block no reads or writes); --json lists every statement and lock. Durations are the rehearsal's on sampled rows; "
              "'on target' is how much data the statement meets there.[/]", soft_wrap=True)


# --- end plan ---


# --- check (issue 17) rendering ---

from rich.text import Text  # noqa: E402 - kept inside the check block

_OBJECT_LABELS = ("materialized view ", "table ", "view ", "sequence ", "function ", "procedure ", "type ", "schema ", "extension ")


def _within(obj: str, name: str) -> str:
    """`name` shortened to what follows the object it is listed under (a column's name
    after its table's); empty for the object itself."""
    own = next((obj[len(label):] for label in _OBJECT_LABELS if obj.startswith(label)), obj)
    if name == own:
        return ""
    return name[len(own) + 1:] if name.startswith(own + ".") else name


def print_check(result: Any) -> None:
    """`trackschema check`: the differences grouped by object; under each, the kind and name
    of what differs, then what is there and what should be (`(missing)` on the side that
    lacks it). Lines are not wrapped, so they can be copied whole."""
    revision = ("revision " + ", ".join(result.revisions)) if result.revisions else "base (no revision applied)"
    took = f"{result.seconds:.1f}s, {result.build_seconds:.1f}s of it building the scratch database"
    for note in result.notes:
        warning(note)
    if result.clean:
        out.print(Text.assemble(("No drift: ", "bold green"), f"{result.database} is what {revision} says it should be "
                                f"(compared with a scratch database built to it; {took})."), soft_wrap=True)
        return
    grouped = result.by_object()
    out.print(Text.assemble(("Drift: ", "bold red"), f"{len(result.differences)} difference(s) in {len(grouped)} object(s) of "
                            f"{result.database} ({revision}), against a scratch database built to it ({took})."), soft_wrap=True)
    for obj, differences in grouped.items():
        out.print()
        out.print(Text(obj, style="bold"), soft_wrap=True)
        for d in differences:
            out.print(Text.assemble("  ", (d.kind, "cyan"), " " if _within(obj, d.name) else "", _within(obj, d.name)), soft_wrap=True)
            out.print(Text.assemble("    there      ", (d.there, "yellow") if d.there is not None else ("(missing)", "red")), soft_wrap=True)
            out.print(Text.assemble("    should be  ", (d.should_be, "green") if d.should_be is not None else ("(missing)", "red")), soft_wrap=True)


# --- end check ---


# --- ci (issue 18) ---

from rich.text import Text  # noqa: E402 - kept inside the ci block

_CI_MARKS = {"passed": ("✓", "green"), "failed": ("✗", "bold red"), "skipped": ("–", "yellow")}
_CI_PROBLEMS_SHOWN = 20  # per failed step; --json and --junit-xml have every one


def ci_step(step: Any) -> None:
    """`trackschema ci` while it runs: one line per step as it finishes (stderr, so stdout
    holds only the summary)."""
    mark, style = _CI_MARKS.get(step.status, ("?", ""))
    err.print(Text.assemble((f"{mark} ", style), (step.title, "bold"), f"  {step.seconds:.1f}s  ", step.detail), soft_wrap=True)


def print_ci(result: Any) -> None:
    """`trackschema ci`: the server, a table of the steps (result, time, detail), then the
    problems of each failed step, unwrapped so they can be copied whole."""
    out.print(Text.assemble(("trackschema ci", "bold"), f" on {result.server} (PostgreSQL {result.postgres_version}), "
                            f"ready in {result.provision_seconds:.1f}s"), soft_wrap=True)
    table = Table()
    table.add_column("step")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("detail")
    for step in result.steps:
        mark, style = _CI_MARKS.get(step.status, ("?", ""))
        table.add_row(Text(step.title), Text(f"{mark} {step.status}", style=style), f"{step.seconds:.1f}s", Text(step.detail))
    out.print(table)
    for step in result.failed:
        out.print(Text.assemble((step.title, "bold red"), f": {len(step.problems)} problem(s)"), soft_wrap=True)
        for problem in step.problems[:_CI_PROBLEMS_SHOWN]:
            out.print(Text(f"  {problem}"), soft_wrap=True)
        if len(step.problems) > _CI_PROBLEMS_SHOWN:
            out.print(f"  … and {len(step.problems) - _CI_PROBLEMS_SHOWN} more (--json or --junit-xml has every one)")
    total = Text.assemble(("passed", "bold green") if result.ok else ("failed", "bold red"),
                          f" in {result.seconds:.1f}s" + (f"; JUnit report in {result.junit_xml}" if result.junit_xml else ""))
    out.print(total, soft_wrap=True)


# --- end ci ---
