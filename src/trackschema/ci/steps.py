"""The steps of `trackschema ci`, one function each, each returning a `StepResult`.

They share a `Workspace`: the server, the databases made on it (each ci run's own,
`trackschema_ci_<hex>_*`, dropped at the end) and the snapshots steps hand on. A
step never raises for what it checks: a failed migration, a difference, a finding is a
failed step naming it; the next steps run when they can (a step that needs the database
at head is skipped when the upgrade failed).

Schemas are compared with `trackschema.schema.catalog` (`snapshot_on`, `compare` with
`rolling_partitions=False`: two snapshots of one run must be identical). Alembic keeps its
`alembic_version` table when a downgrade reaches base, so that table alone is never a
difference.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from trackschema.ci.options import CiOptions, ordered_revisions, script_directory
from trackschema.errors import TrackschemaError
from trackschema.migrations import runner
from trackschema.runtime import db
from trackschema.runtime.settings import Settings
from trackschema.schema.catalog import CatalogSnapshot, Difference, compare, snapshot_on
from trackschema.testing.databases import Admin

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
VERSION_TABLE = "table public.alembic_version"  # Alembic's bookkeeping, left behind at base

TITLES = {
    "upgrade": "upgrade base→head",
    "round-trip": "round trip head→base→head",
    "revisions": "each revision up/down/up",
    "lint": "squawk over the --sql plan",
    "audits": "audits --fail-on",
}


@dataclass
class StepResult:
    """What one step found: `status` passed, failed or skipped; `detail` one line;
    `problems` one line per failure (a difference, a finding, an error)."""

    name: str
    status: str
    seconds: float
    detail: str
    problems: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status, "seconds": round(self.seconds, 3),
                "detail": self.detail, "problems": self.problems}


@dataclass
class Workspace:
    """The server ci works on and what the steps share."""

    server_url: str
    options: CiOptions
    admin: Admin = field(init=False)
    prefix: str = field(init=False)
    made: list[str] = field(default_factory=list)
    head_url: str | None = None  # the upgrade step's database, at head once it passed
    empty: CatalogSnapshot | None = None  # a database no revision touched

    def __post_init__(self) -> None:
        self.admin = Admin(self.server_url)
        self.prefix = f"trackschema_ci_{secrets.token_hex(4)}"

    def new_database(self, suffix: str) -> str:
        name = f"{self.prefix}_{suffix}"
        self.made.append(name)
        return self.admin.create(name)

    def settings(self, url: str) -> Settings:
        """Migration settings for ci's databases: they hold only what the revisions wrote,
        so the data-loss guards of a downgrade are not in the way."""
        return Settings(database_url=url, allow_data_loss=True)

    @property
    def versions(self) -> list[str] | None:
        return self.options.extra_version_locations

    def upgrade(self, url: str, revision: str) -> Any:
        return runner.upgrade(self.settings(url), revision, extra_version_locations=self.versions)

    def downgrade(self, url: str, revision: str) -> Any:
        return runner.downgrade(self.settings(url), revision, extra_version_locations=self.versions)

    def cleanup(self) -> None:
        """Drop every database this run made, then let the admin connection go."""
        try:
            for name in self.made:
                self.admin.drop(name)
        finally:
            self.admin.close()


def snapshot(url: str) -> CatalogSnapshot:
    with db.connect(url, application_name="trackschema-ci") as conn:
        return snapshot_on(conn)


def differences(live: CatalogSnapshot, expected: CatalogSnapshot) -> list[Difference]:
    """`compare(live, expected, rolling_partitions=False)` without Alembic's version table."""
    return [d for d in compare(live, expected, rolling_partitions=False) if d.object != VERSION_TABLE]


def describe(d: Difference) -> str:
    """One line: the object, what differs, what is there and what should be."""
    name = d.name if d.object.endswith(" " + d.name) else f"{d.kind} {d.name}"
    where = d.object if name == d.name else f"{d.object}, {name}"
    return f"{where}: there {d.there if d.there is not None else '(missing)'}; should be {d.should_be if d.should_be is not None else '(missing)'}"


def _failure(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def timed(name: str, body: Callable[[], tuple[str, str, list[str]]]) -> StepResult:
    """Run a step's `body` (returning status, detail, problems) and time it; an error it
    did not expect (a migration that fails, a lost connection) fails the step with its
    message."""
    started = time.monotonic()
    try:
        status, detail, problems = body()
    except (TrackschemaError, psycopg.Error) as exc:
        status, detail, problems = FAILED, _failure(exc), [_failure(exc)]
    return StepResult(name, status, time.monotonic() - started, detail, problems)


def skipped(name: str, reason: str) -> StepResult:
    return StepResult(name, SKIPPED, 0.0, reason)


# --- the steps ------------------------------------------------------------------------------


def upgrade(ws: Workspace) -> StepResult:
    """A new empty database, migrated base→head."""
    def body() -> tuple[str, str, list[str]]:
        url = ws.new_database("head")
        ws.empty = snapshot(url)
        result = ws.upgrade(url, "head")
        heads = sorted(script_directory(ws.versions).get_heads())
        if result.after != heads:
            return FAILED, f"the database is at {', '.join(result.after) or 'base'}, not at head {', '.join(heads)}", []
        ws.head_url = url
        first = result.applied[0]["to"] if result.applied else "base"
        return PASSED, f"{len(result.applied)} revisions applied, {first} … {result.after[0]}", []

    return timed("upgrade", body)


def round_trip(ws: Workspace) -> StepResult:
    """head→base→head on the upgrade step's database: at base the schema must be the empty
    database's again, and back at head exactly what it was."""
    if ws.head_url is None or ws.empty is None:
        return skipped("round-trip", "no database at head: the upgrade step failed")
    url, empty = ws.head_url, ws.empty

    def body() -> tuple[str, str, list[str]]:
        ws.head_url = None  # until it is back at head
        at_head = snapshot(url)
        ws.downgrade(url, "base")
        left_at_base = differences(snapshot(url), empty)
        ws.upgrade(url, "head")
        ws.head_url = url
        changed = differences(snapshot(url), at_head)
        problems = [f"left at base by the downgrade: {describe(d)}" for d in left_at_base]
        problems += [f"different at head after the round trip: {describe(d)}" for d in changed]
        if problems:
            return FAILED, f"{len(left_at_base)} object(s) left at base, {len(changed)} difference(s) back at head", problems
        return PASSED, f"base is empty again and head is identical ({len(at_head.entries)} catalog objects compared)", []

    return timed("round-trip", body)


def revisions(ws: Workspace) -> StepResult:
    """Each revision on its own, in a database of its own: up, down, up. After the down
    the schema must be what it was before the up (the downgrade undoes the upgrade); after
    the second up it must be what the first up made. With `--revisions`, only those
    revisions are checked (the database is upgraded straight to each one's predecessor)."""
    chosen = set(ws.options.revisions or ())

    def body() -> tuple[str, str, list[str]]:
        url = ws.new_database("revisions")
        problems: list[str] = []
        failing: list[str] = []
        checked = 0
        at, before = "base", None  # where the database is, and its snapshot there (None: not read yet)
        for rev in ordered_revisions(ws.versions):
            if chosen and rev.revision not in chosen:
                continue
            down = rev.down_revision
            if isinstance(down, (tuple, list)):
                problems.append(f"{rev.revision} merges {', '.join(down)}: not checked on its own (the round trip covers it)")
                failing.append(rev.revision)
                continue
            previous = down or "base"
            if at != previous:
                ws.upgrade(url, previous)
                at, before = previous, None
            if before is None:
                before = snapshot(url)
            phase = "upgrade"
            try:
                ws.upgrade(url, rev.revision)
                made = snapshot(url)
                phase = "downgrade"
                ws.downgrade(url, previous)
                undone = differences(snapshot(url), before)
                phase = "upgrade after its downgrade"
                ws.upgrade(url, rev.revision)
                after = snapshot(url)
            except (TrackschemaError, psycopg.Error) as exc:
                problems.append(f"{rev.revision}: {phase} failed: {_failure(exc)}")
                return FAILED, f"{rev.revision}: {phase} failed; the revisions after it were not checked", problems
            again = differences(after, made)
            checked += 1
            problems += [f"{rev.revision}: its downgrade leaves {describe(d)}" for d in undone]
            problems += [f"{rev.revision}: upgrading again after its downgrade differs: {describe(d)}" for d in again]
            if undone or again:
                failing.append(rev.revision)
            at, before = rev.revision, after
        if problems:
            return FAILED, f"{len(problems)} problem(s) in {', '.join(failing)} ({checked} revisions checked)", problems
        return PASSED, f"{checked} revisions: each downgrade undid its upgrade, each upgrade made the same schema again", []

    return timed("revisions", body)


def lint(ws: Workspace) -> StepResult:
    """squawk over the offline SQL (`trackschema.migrations.lint`, `.squawk.toml`): the whole
    plan both ways and each revision's own SQL (only `--revisions`, when given)."""
    from trackschema.migrations import lint as squawk

    def body() -> tuple[str, str, list[str]]:
        report = squawk.lint(ws.versions, revisions=ws.options.revisions)
        headline = report.summary().splitlines()[0]
        if not report.ok:
            return FAILED, f"{len(report.problems)} problem(s); {headline}", [str(p) for p in report.problems]
        return PASSED, f"no unjustified finding; {headline}", []

    return timed("lint", body)


def audits(ws: Workspace) -> StepResult:
    """Every audit on the database at head; a finding of a `--fail-on` kind fails the step."""
    from trackschema import audits as audit_module

    if ws.head_url is None:
        return skipped("audits", "no database at head: the upgrade or the round trip failed")
    url = ws.head_url
    fail_on = ws.options.failing_kinds

    def body() -> tuple[str, str, list[str]]:
        findings = audit_module.run_all(Settings(database_url=url))
        failing = [f for f in findings if f.kind in fail_on]
        counts = ", ".join(f"{kind} {n}" for kind, n in Counter(f.kind for f in findings).most_common()) or "none"
        problems = [f"{f.kind}: {' '.join(part for part in (f.table, f.index) if part)}: {f.detail} (fix: {f.fix})" for f in failing]
        detail = f"{len(findings)} finding(s) ({counts}); {len(failing)} of the --fail-on kinds"
        return (FAILED if failing else PASSED), detail, problems

    return timed("audits", body)


STEP_FUNCTIONS: dict[str, Callable[[Workspace], StepResult]] = {
    "upgrade": upgrade, "round-trip": round_trip, "revisions": revisions, "lint": lint, "audits": audits,
}
