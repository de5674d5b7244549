"""Released files never change: every file in alembic/released.sha256 still has its hash.
Also `trackschema.released` itself: changes and missing files are reported, unlisted files
are not checked, `--add` lists new files and refuses to re-hash a changed one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from trackschema.migrations import released
from trackschema.migrations.released import Change, ManifestError

LISTED = released.read_manifest(ROOT)


@pytest.mark.parametrize("path", sorted(LISTED))
def test_released_file_is_unchanged(path: str) -> None:
    file = ROOT / path
    actual = released.digest(file) if file.is_file() else None
    if actual != LISTED[path]:
        pytest.fail(Change(path, LISTED[path], actual).message, pytrace=False)


def test_manifest_lists_the_first_release() -> None:
    """The first submission (revisions 0001–0050, every sql file then, the frozen module) and
    every revision released since: no revision numbered below the newest listed one is missing."""
    revisions = sorted(p for p in LISTED if p.startswith("alembic/versions/"))
    assert len(revisions) >= 17 and "alembic/versions/0050_table_size_history.py" in LISTED
    present = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "alembic" / "versions").glob("[0-9]*.py"))
    assert [p for p in present if p <= revisions[-1]] == revisions
    assert "src/trackschema/promotions/released_2026_11.py" in LISTED
    assert "sql/functions/context_events_promote_metadata.v2.sql" in LISTED
    assert all(p.startswith(("alembic/versions/", "sql/", "src/trackschema/")) for p in LISTED)
    frozen = {p.relative_to(ROOT).as_posix() for p in (ROOT / "src").rglob("released_*.py")}
    assert frozen <= set(LISTED), "a frozen module must be listed in alembic/released.sha256"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A tiny project: two released files listed, one new revision not listed."""
    (tmp_path / "alembic" / "versions").mkdir(parents=True)
    (tmp_path / "sql" / "functions").mkdir(parents=True)
    (tmp_path / "alembic" / "versions" / "0001_a.py").write_text("revision = '0001_a'\n")
    (tmp_path / "sql" / "functions" / "f.v1.sql").write_text("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n")
    assert released.add([tmp_path / "sql" / "functions" / "f.v1.sql", tmp_path / "alembic" / "versions" / "0001_a.py"], tmp_path) == [
        "sql/functions/f.v1.sql", "alembic/versions/0001_a.py"]
    (tmp_path / "alembic" / "versions" / "0060_new.py").write_text("revision = '0060_new'\n")
    return tmp_path


def test_manifest_is_sha256sum_format_sorted_by_path(project: Path) -> None:
    lines = (project / released.MANIFEST).read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == ["alembic/versions/0001_a.py", "sql/functions/f.v1.sql"]
    if shutil.which("sha256sum"):
        done = subprocess.run(["sha256sum", "-c", released.MANIFEST], cwd=project, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_unchanged_files_and_unlisted_files_pass(project: Path) -> None:
    assert released.check(project) == []


def test_edited_and_missing_files_are_reported_one_line_each(project: Path) -> None:
    sql_file = project / "sql" / "functions" / "f.v1.sql"
    sql_file.write_text(sql_file.read_text().replace("SELECT 1", "SELECT 2"))
    (project / "alembic" / "versions" / "0001_a.py").unlink()
    messages = [c.message for c in released.check(project)]
    assert messages == [
        "released file alembic/versions/0001_a.py is missing: add a new revision / a new .vN.sql file instead",
        "released file sql/functions/f.v1.sql changed: add a new revision / a new .vN.sql file instead",
    ]


def test_add_lists_new_files_and_refuses_to_rehash_a_changed_one(project: Path) -> None:
    new = project / "alembic" / "versions" / "0060_new.py"
    assert released.add([new], project) == ["alembic/versions/0060_new.py"]
    assert released.add([new], project) == []  # already listed, same content
    assert set(released.read_manifest(project)) == {"alembic/versions/0001_a.py", "alembic/versions/0060_new.py", "sql/functions/f.v1.sql"}
    new.write_text("revision = '0060_new'  # edited after release\n")
    with pytest.raises(ManifestError, match=r"^released file alembic/versions/0060_new.py changed: add a new revision"):
        released.add([new], project)
    assert released.read_manifest(project)["alembic/versions/0060_new.py"] != released.digest(new)
    with pytest.raises(ManifestError, match="no such file"):
        released.add([project / "sql" / "functions" / "g.v1.sql"], project)
    with pytest.raises(ManifestError, match="outside the project"):
        released.add([Path(__file__)], project)


def test_malformed_manifest_is_a_one_line_error(project: Path) -> None:
    (project / released.MANIFEST).write_text("not a hash line\n")
    with pytest.raises(ManifestError, match=r"line 1 is not `<sha256>  <path>`"):
        released.check(project)


def test_command_line_check_and_add(project: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "trackschema.migrations.released", "--root", str(project), *args],
                              capture_output=True, text=True, cwd=project)

    ok = run()
    assert ok.returncode == 0 and ok.stdout.strip() == "2 released files unchanged"
    added = run("--add", "alembic/versions/0060_new.py")
    assert added.returncode == 0 and added.stdout.strip() == "listed alembic/versions/0060_new.py"
    (project / "alembic" / "versions" / "0060_new.py").write_text("changed\n")
    failed = run()
    assert failed.returncode == 1
    assert failed.stderr.strip() == "released file alembic/versions/0060_new.py changed: add a new revision / a new .vN.sql file instead"
    refused = run("--add", "alembic/versions/0060_new.py")
    assert refused.returncode == 2 and refused.stderr.startswith("error: released file alembic/versions/0060_new.py changed")
