"""squawk over the offline SQL: the whole plan and each revision's own SQL, both directions.

    python -m trackschema.migrations.lint                 # exit 1 naming every problem
    python -m trackschema.migrations.lint --versions DIR  # with extra revisions chained on

Renders, without a database, what `trackschema upgrade --sql` and `downgrade --sql` print:
`upgrade head` and `downgrade head:base`, and for each revision `PREV:REV` and `REV:PREV`;
runs squawk (the `squawk-cli` wheel of the dev extra, configured by `.squawk.toml`) over
all of them, and fails on:

- a finding squawk still reports: fix the revision, or justify the finding where it stands
  (docs/lint.md);
- a `squawk-ignore` naming no rule or giving no reason (`-- squawk-ignore RULE -- reason`),
  and any `squawk-ignore-file` (it would cover every revision of the plan);
- an ignore that suppresses nothing, and a `justifications` entry that matches nothing;
- a downgrade that drops an object its revision's upgrade does not create (the reason
  `annotate` gives downgrade drops would not hold);
- an ignore `annotate` could not place outside strings and bodies.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from trackschema.errors import TrackschemaError
from trackschema.migrations import annotate as notes
from trackschema.migrations.annotate import Annotated, Statement
from trackschema.migrations.justifications import JUSTIFICATIONS, Justification
from trackschema.migrations.runner import alembic_config, alembic_errors
from trackschema.runtime.settings import Settings, project_root

CONFIG = ".squawk.toml"
_IGNORE = re.compile(r"--\s*(squawk-ignore-file|squawk-ignore)\b(.*)$")


class LintError(TrackschemaError):
    """squawk is missing or failed to run (exit 2), as opposed to findings (exit 1)."""


@dataclass(frozen=True)
class Rendering:
    """One offline SQL script, as `--sql` prints it."""

    name: str  # the file squawk reads, e.g. `0003_entity_tracking.upgrade.sql`
    direction: str
    target: str  # the revision range rendered
    revision: str | None  # None: the whole plan
    annotated: Annotated


@dataclass(frozen=True)
class Problem:
    kind: str  # finding, no-rule, no-reason, file-ignore, unneeded, stale, drop, placement
    rendering: str
    message: str

    def __str__(self) -> str:
        return f"{self.rendering}: {self.message}"


@dataclass
class Report:
    squawk: str  # `squawk --version`
    renderings: list[Rendering]
    problems: list[Problem] = field(default_factory=list)
    justified: dict[str, Counter[str]] = field(default_factory=dict)  # whole plan per direction: rule → findings

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        revisions = sum(1 for r in self.renderings if r.revision and r.direction == "upgrade")
        lines = [f"{self.squawk}: {len(self.renderings)} scripts (the whole plan and {revisions} revisions on their own, upgrade and downgrade)"]
        for direction, counts in self.justified.items():
            rules = ", ".join(f"{rule} {n}" for rule, n in counts.most_common()) or "none"
            lines.append(f"  whole {direction} plan: {sum(counts.values())} findings with the ignores turned off ({rules})")
        lines.append(f"  {len(self.problems)} problems" if self.problems else "  no unjustified finding")
        return "\n".join(lines)


def find_squawk() -> str:
    """The squawk of this virtualenv (the `squawk-cli` wheel), else one on PATH."""
    beside = Path(sys.executable).parent
    found = shutil.which("squawk", path=str(beside)) or shutil.which("squawk")
    if not found:
        raise LintError("squawk not found: install the dev extra (pip install -e '.[dev]'), which brings squawk-cli")
    return found


def render(direction: str, target: str, *, extra_version_locations: list[str] | None = None) -> str:
    """The raw offline SQL of `direction target` (`--sql` before `annotate`); no database."""
    buffer = io.StringIO()
    settings = Settings()
    config = alembic_config(settings, output=buffer, extra_version_locations=extra_version_locations)
    with alembic_errors(settings):
        getattr(command, direction)(config, target, sql=True)
    return buffer.getvalue()


@contextmanager
def _released_defaults() -> Iterator[None]:
    """Render 0030 as released: with the default partitioned tables, whatever this shell sets."""
    from trackschema.runtime.settings import PARTITIONED_TABLES_ENV

    saved = os.environ.pop(PARTITIONED_TABLES_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[PARTITIONED_TABLES_ENV] = saved


def renderings(extra_version_locations: list[str] | None = None,
               justifications: Sequence[Justification] = JUSTIFICATIONS,
               revisions: Collection[str] | None = None) -> list[Rendering]:
    """The whole plan both ways, then each revision's upgrade and downgrade on its own
    (only `revisions`, when given)."""
    def make(name: str, direction: str, target: str, revision: str | None) -> Rendering:
        raw = render(direction, target, extra_version_locations=extra_version_locations)
        return Rendering(name, direction, target, revision, notes.annotate(raw, justifications))

    script = ScriptDirectory.from_config(alembic_config(Settings(), extra_version_locations=extra_version_locations))
    with _released_defaults():
        result = [make("plan.upgrade.sql", "upgrade", "head", None), make("plan.downgrade.sql", "downgrade", "head:base", None)]
        for rev in reversed(list(script.walk_revisions())):
            if revisions is not None and rev.revision not in revisions:
                continue
            down = rev.down_revision
            if isinstance(down, (tuple, list)):
                raise LintError(f"{rev.revision} merges {', '.join(down)}: lint it as part of the whole plan only")
            previous = down or "base"
            result.append(make(f"{rev.revision}.upgrade.sql", "upgrade", f"{previous}:{rev.revision}", rev.revision))
            result.append(make(f"{rev.revision}.downgrade.sql", "downgrade", f"{rev.revision}:{previous}", rev.revision))
    unknown = sorted(set(revisions or ()) - {r.revision for r in result if r.revision})
    if unknown:
        raise LintError(f"unknown revision {', '.join(unknown)} (see `trackschema history`)")
    return result


def run_squawk(squawk: str, scripts: dict[str, str], config: Path) -> list[dict[str, object]]:
    """squawk's findings (its JSON reporter) over `scripts` (file name → SQL), in one run."""
    with tempfile.TemporaryDirectory(prefix="trackschema-squawk-") as folder:
        for name, text in scripts.items():
            Path(folder, name).write_text(text)
        done = subprocess.run([squawk, "--config", str(config), "--reporter", "json", *scripts], cwd=folder,
                              capture_output=True, text=True, timeout=300)
    try:
        findings = json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        raise LintError(f"squawk failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:500]}") from None
    if done.returncode not in (0, 1) or not isinstance(findings, list):
        raise LintError(f"squawk failed (exit {done.returncode}): {done.stderr.strip()[:500]}")
    return findings


def disarm(text: str) -> str:
    """The same script (same lines) with every ignore comment turned off."""
    return text.replace("squawk-ignore", "squawk-notice")


def _statement_at(stmts: list[Statement], line: int) -> Statement | None:
    return next((s for s in stmts if s.first_line <= line <= s.last_line), None)


def _ignores(text: str) -> Iterator[tuple[int, str, list[str], str]]:
    """Every squawk ignore comment outside strings and bodies: line, kind, rules, reason."""
    sc = notes.scan(text)
    for start, end, _between in sc.comments:
        match = _IGNORE.match(text, start, end)
        if match:
            names, _, reason = match.group(2).partition("--")
            yield sc.line_of(start), match.group(1), [r.strip() for r in names.split(",") if r.strip()], reason.strip()


_CREATES = {
    "TABLE": r"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{qualified}",
    "FUNCTION": r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s+{qualified}\s*\(",
    "PROCEDURE": r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s+{qualified}\s*\(",
    "VIEW": r"CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+{qualified}",
    "MATERIALIZED VIEW": r"CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?{qualified}",
    "DOMAIN": r"CREATE\s+DOMAIN\s+{qualified}",
    "SEQUENCE": r"CREATE\s+SEQUENCE\s+(?:IF\s+NOT\s+EXISTS\s+)?{qualified}",
    "SCHEMA": r"CREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?{name}",
    "TYPE": r"CREATE\s+TYPE\s+{qualified}",
    "EXTENSION": r"CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?{name}",
    "COLUMN": r"ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?{name}\s",
    "CONSTRAINT": r"(?<!DROP )(?<!VALIDATE )CONSTRAINT\s+{name}\s",
}


def creates(upgrade_sql: str, kind: str, name: str) -> bool:
    """Whether `upgrade_sql` creates the `kind` object called `name` (quoted or not, any schema;
    also inside EXECUTE strings, where the revision builds the statement in a DO block)."""
    bare = re.escape(name)
    name_pattern = rf'(?:"{bare}"|{bare})(?![\w"])'
    qualified = rf'(?:(?:"[^"]+"|\w+)\.)?{name_pattern}'
    pattern = _CREATES[kind].format(qualified=qualified, name=name_pattern)
    return re.search(pattern, upgrade_sql, re.I) is not None


def check(report: Report, squawk: str, config: Path, justifications: Sequence[Justification] = JUSTIFICATIONS) -> None:
    """Run squawk over the renderings of `report` and record every problem."""
    scripts = {r.name: r.annotated.text for r in report.renderings}
    findings = run_squawk(squawk, scripts, config)
    bare = run_squawk(squawk, {name: disarm(text) for name, text in scripts.items()}, config)
    by_name = {r.name: r for r in report.renderings}
    statements = {r.name: notes.statements(r.annotated.text) for r in report.renderings}

    for finding in findings:
        name, line, rule = str(finding["file"]), int(finding["line"]), str(finding["rule_name"])
        stmt = _statement_at(statements[name], line)
        where = stmt.describe() if stmt else f"line {line + 1}"
        report.problems.append(Problem("finding", name, f"{rule} in {where}: {finding['message']}"))

    flagged: dict[str, set[tuple[int, str]]] = {}
    for finding in bare:
        flagged.setdefault(str(finding["file"]), set()).add((int(finding["line"]), str(finding["rule_name"])))
    for rendering in report.renderings:
        text = rendering.annotated.text
        if rendering.revision is None:
            report.justified[rendering.direction] = Counter(str(f["rule_name"]) for f in bare if f["file"] == rendering.name)
        for line, kind, rules, reason in _ignores(text):
            stmt = _statement_at(statements[rendering.name], line + 1)
            where = stmt.describe() if stmt else f"line {line + 1}"
            if kind == "squawk-ignore-file":
                report.problems.append(Problem("file-ignore", rendering.name, f"`{kind}` at line {line + 1} would cover every revision of the plan: ignore one line, with its reason"))
                continue
            if not rules:
                report.problems.append(Problem("no-rule", rendering.name, f"`squawk-ignore` above {where} names no rule, so it covers every rule on its line: name the rule"))
            if not reason:
                report.problems.append(Problem("no-reason", rendering.name, f"`squawk-ignore {', '.join(rules)}` above {where} has no reason: write `-- squawk-ignore RULE -- why it is fine here`"))
            here = flagged.get(rendering.name, set())
            for rule in rules:
                if (line, rule) not in here and (line + 1, rule) not in here:
                    report.problems.append(Problem("unneeded", rendering.name, f"`squawk-ignore {rule}` above {where} suppresses nothing: remove it"))
        report.problems += [Problem("placement", rendering.name, p) for p in rendering.annotated.problems]

    used = {note.entry for r in report.renderings for note in r.annotated.notes if note.entry is not None}
    for entry in justifications:
        if entry not in used:
            report.problems.append(Problem("stale", "justifications.py", f"{entry.rule} for {entry.revision} ({entry.direction}) `{entry.statement}`"
                                           + (f" at `{entry.at}`" if entry.at else "") + " matches no statement: correct or remove the entry"))

    for rendering in report.renderings:
        if rendering.revision is None or rendering.direction != "downgrade":
            continue
        upgrade_sql = by_name[f"{rendering.revision}.upgrade.sql"].annotated.raw
        for note in rendering.annotated.notes:
            for kind, name in note.drops:
                if not creates(upgrade_sql, kind, name):
                    report.problems.append(Problem("drop", rendering.name, (
                        f"{note.statement.describe()} drops {kind.lower()} {name}, which {rendering.revision}'s upgrade does not create: "
                        "if dropping it is right, justify it on its own line (docs/lint.md)")))


def lint(extra_version_locations: list[str] | None = None, *, squawk: str | None = None,
         justifications: Sequence[Justification] = JUSTIFICATIONS, revisions: Collection[str] | None = None) -> Report:
    """Render every script (each revision's own only for `revisions`, when given), run
    squawk over them and return what it found."""
    config = project_root() / CONFIG
    if not config.is_file():
        raise LintError(f"{config} is missing: squawk's reviewed configuration lives there (docs/lint.md)")
    squawk = squawk or find_squawk()
    version = subprocess.run([squawk, "--version"], capture_output=True, text=True, check=False).stdout.strip() or "squawk"
    report = Report(version, renderings(extra_version_locations, justifications, revisions))
    check(report, squawk, config, justifications)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trackschema.migrations.lint", description=__doc__.splitlines()[0])
    parser.add_argument("--versions", action="append", metavar="DIR", help="a folder of extra revisions chained onto ours")
    parser.add_argument("--revision", action="append", metavar="REV", help="lint only this revision on its own (and the whole plan)")
    parser.add_argument("--write", type=Path, metavar="DIR", help="also write the scripts squawk read into DIR")
    args = parser.parse_args(argv)
    try:
        report = lint([str(Path(v).resolve()) for v in args.versions] if args.versions else None, revisions=args.revision)
    except TrackschemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for rendering in report.renderings:
            (args.write / rendering.name).write_text(rendering.annotated.text)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
