"""Every `docs/NAME.md#anchor` that the code, the tests, the revisions or the docs point a
user to exists: as an explicit `{#anchor}` on a heading, or as the GitHub slug of one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"docs/([a-z_]+\.md)#([a-z0-9-]+)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*(?:\{#([a-z0-9-]+)\})?\s*$", re.M)


def anchors(doc: Path) -> set[str]:
    found = set()
    for title, explicit in HEADING.findall(doc.read_text()):
        if explicit:
            found.add(explicit)
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_docs_anchor_pointed_to_exists() -> None:
    sources = [p for folder in ("src", "tests", "alembic", "docs", "benchmarks") for p in (ROOT / folder).rglob("*")
               if p.suffix in {".py", ".md", ".sql"} and p.is_file()] + [ROOT / "README.md"]
    links = {(doc, anchor, str(p.relative_to(ROOT))) for p in sources for doc, anchor in LINK.findall(p.read_text())}
    assert links
    missing = sorted(f"{source}: docs/{doc}#{anchor}" for doc, anchor, source in links
                     if not (ROOT / "docs" / doc).is_file() or anchor not in anchors(ROOT / "docs" / doc))
    assert missing == []
