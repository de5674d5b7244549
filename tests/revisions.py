"""Throwaway revisions for tests: a file chained onto the history's head, alone in a
versions folder that the runner takes as an extra version location."""

from __future__ import annotations

import textwrap
from pathlib import Path

from trackschema.migrations import runner as migrate

HEAD = migrate.heads()[0].revision


def scratch_revision(folder: Path, revision: str, *, upgrade: str = "", downgrade: str = "",
                     upgrade_code: str | None = None, doc: str = "A throwaway revision (test only).") -> str:
    """Write `revision` into `folder` (made if missing), chained onto head: its upgrade()
    executes the SQL `upgrade` (or runs the Python statements `upgrade_code`), its
    downgrade() the SQL `downgrade` (nothing when empty). Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    up = textwrap.dedent(upgrade_code).strip() if upgrade_code is not None else f"op.execute({upgrade!r})"
    down = f"op.execute({downgrade!r})" if downgrade else "pass"
    (folder / f"{revision}.py").write_text(
        f'"""{doc}"""\nfrom alembic import op\n\nrevision = {revision!r}\ndown_revision = {HEAD!r}\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{textwrap.indent(up, '    ')}\n\n\ndef downgrade() -> None:\n    {down}\n"
    )
    return str(folder)
