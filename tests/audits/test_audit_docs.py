"""docs/audits.md documents every finding kind and matches the checks' docstrings."""

from __future__ import annotations

from tests.conftest import ROOT
from trackschema.audits import parse_fail_on
from trackschema.audits.docs import render_markdown


def test_docs_are_generated_from_the_docstrings() -> None:
    committed = (ROOT / "docs" / "audits.md").read_text()
    assert committed == render_markdown(), "run: python -m trackschema.audits.docs > docs/audits.md"


def test_every_kind_is_documented() -> None:
    text = render_markdown()
    for kind in parse_fail_on("all"):
        assert f"`{kind}`" in text, kind
