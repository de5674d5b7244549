"""squawk over the offline SQL (docs/lint.md): the whole plan and each revision's own SQL,
upgrade and downgrade, pass with every finding justified where it stands; a new revision
with an unjustified finding fails, shown with throwaway revisions in a scratch folder.
No database: `--sql` renders offline, and squawk is the dev extra's squawk-cli wheel."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import revisions
from tests.conftest import ROOT
from trackschema.migrations import annotate, lint
from trackschema.migrations import runner as migrate
from trackschema.migrations.justifications import JUSTIFICATIONS, Justification
from trackschema.runtime.settings import Settings

HEAD = migrate.heads()[0].revision
SCRATCH = "9001_scratch"


@pytest.fixture(scope="module")
def report() -> lint.Report:
    return lint.lint()


def test_squawk_comes_from_the_virtualenv() -> None:
    assert Path(lint.find_squawk()).parent == Path(sys.executable).parent
    assert (ROOT / lint.CONFIG).is_file()


def test_the_whole_plan_and_each_revision_pass_squawk(report: lint.Report) -> None:
    assert report.ok, "\n".join(map(str, report.problems))
    revisions = [r.revision for r in reversed(migrate.history())]
    assert [r.name for r in report.renderings] == ["plan.upgrade.sql", "plan.downgrade.sql"] + [
        f"{rev}.{direction}.sql" for rev in revisions for direction in ("upgrade", "downgrade")
    ]
    # what squawk reports with the ignores turned off: the released plan's findings, all justified
    assert report.justified["upgrade"]["prefer-robust-stmts"] >= 54 and report.justified["downgrade"]["ban-drop-table"] >= 20
    assert "no unjustified finding" in report.summary()


def test_annotating_changes_nothing_that_runs() -> None:
    """The added lines are whole comment lines outside every string and body: without them
    the script is the raw rendering byte for byte. `--sql` prints the annotated script."""
    for direction, target in (("upgrade", "head"), ("downgrade", f"{HEAD}:base")):
        raw = lint.render(direction, target)
        annotated = annotate.annotate(raw)
        assert annotated.notes and not annotated.problems
        assert getattr(migrate, direction)(Settings(), target, sql=True).sql == annotated.text
        lines, raw_lines = annotated.text.split("\n"), raw.split("\n")
        added, matched = [], 0  # walk both: a line that is not the raw rendering's next one was added
        for n, line in enumerate(lines):
            if matched < len(raw_lines) and line == raw_lines[matched]:
                matched += 1
            else:
                added.append(n)
        assert matched == len(raw_lines)  # so without the added lines the script is the raw rendering
        # only whole ignore comments were added (a revision's own ignore lines are part of the raw rendering)
        assert added and all(re.match(r"\s*-- squawk-ignore [a-z-]+(, [a-z-]+)* -- \S", lines[n]) for n in added)
        scanned = annotate.scan(annotated.text)
        assert not [n for n in added if scanned.inside_quoted(scanned.line_starts[n])]


def _scratch_revision(folder: Path, upgrade: str, downgrade: str = "", *, revision: str = SCRATCH) -> str:
    """A throwaway revision chained onto head, in its own versions folder."""
    return revisions.scratch_revision(folder, revision, upgrade=upgrade, downgrade=downgrade, doc="A throwaway revision for the squawk tests.")


def _problems(report: lint.Report, kind: str) -> list[str]:
    return [str(p) for p in report.problems if p.kind == kind]


def test_a_new_revision_with_an_unjustified_finding_fails_naming_revision_rule_and_statement(tmp_path: Path) -> None:
    versions = _scratch_revision(tmp_path / "versions", "CREATE INDEX idx_contacts_scratch ON contacts (email)",
                                 "DROP INDEX CONCURRENTLY IF EXISTS idx_contacts_scratch")
    report = lint.lint([versions], revisions=[SCRATCH])
    assert not report.ok
    findings = _problems(report, "finding")
    expected = (f"{SCRATCH}.upgrade.sql: require-concurrent-index-creation in {SCRATCH} (upgrade): "
                "`CREATE INDEX idx_contacts_scratch ON contacts (email)`")
    assert any(f.startswith(expected) for f in findings), findings
    assert any(f.startswith("plan.upgrade.sql: require-concurrent-index-creation in " + SCRATCH) for f in findings), findings
    # the released revisions in the same plan stay justified: only the new statement is reported
    assert all("idx_contacts_scratch" in f for f in findings), findings

    # as CI and a developer run it: exit 1, the finding on stderr
    done = subprocess.run([sys.executable, "-m", "trackschema.migrations.lint", "--versions", versions, "--revision", SCRATCH],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stderr and "problems" in done.stdout


def test_a_revision_justifies_its_own_finding_on_its_line_with_a_reason(tmp_path: Path) -> None:
    versions = _scratch_revision(
        tmp_path / "versions",
        "-- squawk-ignore require-concurrent-index-creation -- contacts holds a few hundred rows in every deployment\n"
        "CREATE INDEX idx_contacts_scratch ON contacts (email)",
        "DROP INDEX CONCURRENTLY IF EXISTS idx_contacts_scratch",
    )
    report = lint.lint([versions], revisions=[SCRATCH])
    assert report.ok, "\n".join(map(str, report.problems))


@pytest.mark.parametrize(
    ("sql", "kind", "says"),
    [
        ("-- squawk-ignore require-concurrent-index-creation\nCREATE INDEX idx_contacts_scratch ON contacts (email)",
         "no-reason", "has no reason"),
        ("-- squawk-ignore -- every rule\nCREATE INDEX idx_contacts_scratch ON contacts (email)",
         "no-rule", "names no rule"),
        ("-- squawk-ignore-file require-concurrent-index-creation -- all of it\nCREATE INDEX idx_contacts_scratch ON contacts (email)",
         "file-ignore", "would cover every revision of the plan"),
        ("-- squawk-ignore prefer-text-field -- nothing here uses varchar\nCOMMENT ON TABLE contacts IS 'people'",
         "unneeded", "`squawk-ignore prefer-text-field` above 9001_scratch (upgrade): `COMMENT ON TABLE contacts IS 'people'` suppresses nothing"),
    ],
)
def test_an_ignore_needs_a_reason_one_line_and_a_finding(tmp_path: Path, sql: str, kind: str, says: str) -> None:
    versions = _scratch_revision(tmp_path / "versions", sql)
    report = lint.lint([versions], revisions=[SCRATCH])
    assert any(says in p for p in _problems(report, kind)), report.problems


def test_a_downgrade_that_drops_what_its_upgrade_did_not_create_fails(tmp_path: Path) -> None:
    versions = _scratch_revision(tmp_path / "versions", "COMMENT ON TABLE contacts IS 'people'",
                                 "ALTER TABLE contacts DROP COLUMN email")
    report = lint.lint([versions], revisions=[SCRATCH])
    drops = _problems(report, "drop")
    assert drops == [f"{SCRATCH}.downgrade.sql: {SCRATCH} (downgrade): `ALTER TABLE contacts DROP COLUMN email` drops column email, "
                     f"which {SCRATCH}'s upgrade does not create: if dropping it is right, justify it on its own line (docs/lint.md)"]


def test_a_downgrade_may_drop_what_its_upgrade_created(tmp_path: Path) -> None:
    versions = _scratch_revision(tmp_path / "versions", "ALTER TABLE contacts ADD COLUMN nickname text",
                                 "ALTER TABLE contacts DROP COLUMN nickname")
    report = lint.lint([versions], revisions=[SCRATCH])
    assert report.ok, "\n".join(map(str, report.problems))
    down = next(r for r in report.renderings if r.name == f"{SCRATCH}.downgrade.sql").annotated.text
    assert f"-- squawk-ignore ban-drop-column -- undoing {SCRATCH}: drops what its upgrade created" in down


def test_a_justification_that_matches_nothing_or_suppresses_nothing_is_reported() -> None:
    entries = (
        *JUSTIFICATIONS,
        Justification("0001_core_schema", "upgrade", "prefer-text-field", "CREATE TABLE no_such_table (", "stale"),
        Justification("0001_core_schema", "upgrade", "prefer-text-field", "CREATE TABLE contacts (", "nothing to ignore"),
    )
    report = lint.lint(justifications=entries, revisions=["0001_core_schema"])
    assert _problems(report, "stale") == [
        "justifications.py: prefer-text-field for 0001_core_schema (upgrade) `CREATE TABLE no_such_table (` "
        "matches no statement: correct or remove the entry"]
    assert any("`squawk-ignore prefer-text-field` above 0001_core_schema (upgrade): `CREATE TABLE contacts (` suppresses nothing" in p
               for p in _problems(report, "unneeded")), report.problems


SYNTHETIC = """BEGIN;

-- Running upgrade  -> 0001_x

CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$
    SELECT 'a;b'; -- inside the body
$body$;;

CREATE TABLE t (
    a varchar(10),
    "b;" text DEFAULT 'x;y' /* c; */
);

COMMIT;
"""


def test_scan_splits_statements_as_postgresql_does() -> None:
    heads = [s.head for s in annotate.statements(SYNTHETIC)]
    assert heads == ["BEGIN", "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$", "CREATE TABLE t (", "COMMIT"]
    assert [s.revision for s in annotate.statements(SYNTHETIC)] == [None, "0001_x", "0001_x", "0001_x"]


def test_an_ignore_is_never_placed_inside_a_body() -> None:
    entries = (
        Justification("0001_x", "upgrade", "prefer-text-field", "CREATE TABLE t (", "a label", at="a varchar(10),"),
        Justification("0001_x", "upgrade", "some-rule", "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$", "x",
                      at="SELECT 'a;b'; -- inside the body"),
    )
    annotated = annotate.annotate(SYNTHETIC, entries)
    assert "    -- squawk-ignore prefer-text-field -- a label\n    a varchar(10)," in annotated.text
    assert "some-rule" not in annotated.text
    assert len(annotated.problems) == 1 and "inside a string or a body" in annotated.problems[0]
