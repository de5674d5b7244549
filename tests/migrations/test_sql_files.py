"""Every file under sql/ is installed by some revision, and every file a revision names exists."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def revision_texts() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "alembic" / "versions").glob("*.py"))


def test_every_sql_file_is_used_by_a_revision() -> None:
    texts = revision_texts()
    files = sorted(p.relative_to(ROOT / "sql").as_posix() for p in (ROOT / "sql").rglob("*.sql"))
    assert files, "sql/ should hold the functions the revisions install"
    unused = [f for f in files if f not in texts]
    assert unused == []


def test_every_sql_file_named_by_a_revision_exists_and_is_versioned() -> None:
    named = set(re.findall(r"""["']((?:functions|triggers)/[\w.]+\.sql)["']""", revision_texts()))
    assert named
    for name in named:
        assert (ROOT / "sql" / name).is_file(), name
        assert re.search(r"\.v\d+\.sql$", name), f"{name}: name the version (name.v1.sql) so it never changes meaning"
