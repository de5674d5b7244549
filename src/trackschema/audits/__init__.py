"""Audits: one check per module, each returning `Finding`s. An audit never changes anything.

A check's docstring is the user's documentation: what is wrong and what to do instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """One problem an audit found, with the exact statement that fixes it.

    `kind` names the check (e.g. `unused`, `missing_trigger`); `index` is empty when the
    finding is about a table or a function rather than an index.
    """

    kind: str
    table: str
    index: str
    detail: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
