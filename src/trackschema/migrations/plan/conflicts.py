"""Table-level lock modes: their names, their order, what each conflicts with (PostgreSQL's
"Conflicting Lock Modes" table), what a lock of each mode blocks for other sessions, and the
`--fail-on` words that name them."""

from __future__ import annotations

# pg_locks.mode -> the name PostgreSQL's documentation uses, weakest first (PostgreSQL's order).
MODES: dict[str, str] = {
    "AccessShareLock": "ACCESS SHARE",
    "RowShareLock": "ROW SHARE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}
STRENGTH: dict[str, int] = {name: n for n, name in enumerate(MODES.values())}

# "Conflicting Lock Modes" (PostgreSQL 15, 13.3.1 Table-Level Locks). tests/migrations/test_plan.py
# checks every row against the server: a session holding the mode, another one reading/writing.
CONFLICTS: dict[str, frozenset[str]] = {
    "ACCESS SHARE": frozenset({"ACCESS EXCLUSIVE"}),
    "ROW SHARE": frozenset({"EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "ROW EXCLUSIVE": frozenset({"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE UPDATE EXCLUSIVE": frozenset({"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE": frozenset({"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE ROW EXCLUSIVE": frozenset({"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "EXCLUSIVE": frozenset({"ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "ACCESS EXCLUSIVE": frozenset(MODES.values()),
}
READ_MODE = "ACCESS SHARE"  # what a plain SELECT takes
WRITE_MODE = "ROW EXCLUSIVE"  # what INSERT, UPDATE, DELETE, MERGE take


def blocks(mode: str) -> str:
    """What a lock of `mode` blocks for other sessions: "reads and writes", "writes" or
    "nothing" (plain reads take ACCESS SHARE, writes ROW EXCLUSIVE). EXCLUSIVE blocks writes
    and SELECT ... FOR UPDATE/SHARE, not plain reads; SHARE UPDATE EXCLUSIVE blocks only other
    DDL, VACUUM and ANALYZE."""
    conflicts = CONFLICTS[mode]
    reads, writes = READ_MODE in conflicts, WRITE_MODE in conflicts
    if reads and writes:
        return "reads and writes"
    return "reads" if reads else "writes" if writes else "nothing"


def mode_word(mode: str) -> str:
    """`ACCESS EXCLUSIVE` -> `access-exclusive`, as `--fail-on` spells it."""
    return mode.lower().replace(" ", "-")


FAIL_ON_CHOICES: tuple[str, ...] = tuple(mode_word(m) for m in reversed(MODES.values())) + ("rewrite", "blocks-reads", "blocks-writes")
# How much each answer of `blocks` blocks, for "the worst of a statement's locks".
SEVERITY: dict[str, int] = {"reads and writes": 3, "reads": 2, "writes": 1, "nothing": 0}
