"""docs/audits.md, generated from the checks' docstrings (one source of truth).

Regenerate with `python -m trackschema.audits.docs > docs/audits.md`; a test fails when
the committed file is out of date.
"""

from __future__ import annotations

import importlib
import inspect

# Modules whose docstring documents a finding kind, in the order they are documented.
DOCUMENTED = (
    "trackschema.audits.indexes.unused",
    "trackschema.audits.indexes.duplicate",
    "trackschema.audits.indexes.redundant",
    "trackschema.audits.indexes.invalid",
    "trackschema.audits.indexes.bloat",
    "trackschema.audits.indexes.unindexed_fk",
    "trackschema.audits.indexes.write_cost",
    "trackschema.audits.triggers",
    "trackschema.audits.partitions.conversion_incomplete",
    "trackschema.audits.partitions.default_rows",
    "trackschema.audits.partitions.running_out",
    "trackschema.audits.partitions.detach_pending",
    "trackschema.audits.jsonb",
)

HEADER = """# Audit findings

Every finding trackschema's audits report: what is wrong and what to do. Audits only
read the catalog and statistics; they never change anything. Each finding carries the
exact statement that fixes it (`fix`), to review and run yourself.

```bash
trackschema audit                       # every audit; --fail-on KINDS exits 1 for CI
trackschema audit indexes --json        # list of {kind, table, index, detail, fix} (+ shards on Citus)
trackschema audit triggers --fail-on all  # updated_at and tracking triggers
trackschema audit jsonb                 # JSONB promotion candidates (pg_stat_statements)
```

On Citus (audited through the coordinator), the index audit reads the scans, sizes,
bloat estimates and validity of Citus tables' indexes from their shards on every node and
sums them per index (a reference table's copy on every node included); each such finding
says how many shards it read (`shards` in `--json`). A node that does not answer fails the
audit, naming it.

This page is generated from the checks' docstrings (`python -m trackschema.audits.docs`).
"""


def render_markdown() -> str:
    sections = [HEADER]
    for name in DOCUMENTED:
        doc = inspect.cleandoc(importlib.import_module(name).__doc__ or "")
        title, _, body = doc.partition("\n")
        kind, dash, summary = title.partition(" — ")
        if dash:
            sections.append(f"## `{kind.strip()}`\n\n**{summary.strip()}**\n{body.rstrip()}\n")
        else:  # a module that reports several kinds documents them in a list
            heading, _, rest = doc.partition("\n\n")
            sections.append(f"## {heading.splitlines()[0].split(':')[0].strip()}\n\n{heading}\n\n{rest.rstrip()}\n")
    return "\n".join(sections)


if __name__ == "__main__":
    print(render_markdown(), end="")
