"""What `plan` hands back: per pending revision its statements and the locks each took
(`PlanResult`, `RevisionPlan`, `StatementTrace`, `LockTaken`), the statements `--fail-on`
names (`failing`, `FailOnHit`), the error a rehearsal that fails raises (`PlanError`), and
the one-line reason of a server error its messages and warnings quote (`first_line`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from trackschema.errors import TrackschemaError
from trackschema.migrations.plan.conflicts import SEVERITY, mode_word


class PlanError(TrackschemaError):
    """The rehearsal could not run, or a revision failed in it (exit 1: it would fail on the target too)."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """The server's primary message of a psycopg error, else the first line of `exc`."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass(frozen=True)
class LockTaken:
    """A table-level lock a statement took on a relation that existed before its transaction
    (the strongest new mode per relation), or a rewrite of one. `held_seconds` runs from the
    statement's start to its transaction's COMMIT (tracing overhead taken out); `target_bytes`
    is the relation's size on the target (relpages from its catalog; None when unknown or not
    there); `table` is an index's table."""

    relation: str
    kind: str
    mode: str | None
    blocks: str
    rewritten: bool
    held_seconds: float
    target_bytes: int | None = None
    table: str | None = None

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StatementTrace:
    """One SQL statement a revision ran in the scratch database. `transaction` is "revision"
    (the revision's transaction) or "autocommit" (an `autocommit_block()`); `observed` says how
    its locks were seen ("same session", or "second session" for statements that cannot run in
    a transaction block)."""

    revision: str
    index: int
    sql_excerpt: str
    locks: list[LockTaken]
    duration: float
    transaction: str
    observed: str

    @property
    def blocks(self) -> str:
        """The worst of its locks' `blocks`."""
        return max((lock.blocks for lock in self.locks), key=lambda b: SEVERITY.get(b, 0), default="nothing")

    def to_dict(self) -> dict[str, object]:
        return {
            "revision": self.revision, "index": self.index, "sql": self.sql_excerpt, "duration": self.duration,
            "transaction": self.transaction, "observed": self.observed, "blocks": self.blocks,
            "locks": [lock.to_dict() for lock in self.locks],
        }


@dataclass(frozen=True)
class RevisionPlan:
    revision: str
    description: str
    statements: list[StatementTrace]
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"revision": self.revision, "description": self.description, "seconds": self.seconds,
                "statements": [s.to_dict() for s in self.statements]}


@dataclass(frozen=True)
class PlanResult:
    """What `plan` found: per pending revision (oldest first), its statements and their locks."""

    database: str
    current: list[str]
    target: str
    revisions: list[RevisionPlan]
    scratch: str | None = None  # the scratch database's URL (password masked); dropped at the end
    sample_rows: int = 0
    sampled: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    fail_on: tuple[str, ...] = ()

    @property
    def pending(self) -> list[str]:
        return [r.revision for r in self.revisions]

    @property
    def failing(self) -> list["FailOnHit"]:
        """The locks `fail_on` names (see `failing`)."""
        return failing(self, self.fail_on)

    def statements(self) -> Iterable[StatementTrace]:
        for revision in self.revisions:
            yield from revision.statements

    def to_dict(self) -> dict[str, object]:
        return {
            "database": self.database, "current": self.current, "target": self.target, "pending": self.pending,
            "scratch": self.scratch, "sample_rows": self.sample_rows, "sampled": self.sampled,
            "warnings": self.warnings, "seconds": self.seconds,
            "revisions": [r.to_dict() for r in self.revisions],
            "fail_on": list(self.fail_on), "failing": [hit.to_dict() for hit in self.failing],
        }


@dataclass(frozen=True)
class FailOnHit:
    """A statement with locks that `--fail-on` names: which revision and statement, the
    relations, and why (the modes, `rewrite`, `blocks reads`, `blocks writes`)."""

    revision: str
    index: int
    sql_excerpt: str
    relations: tuple[str, ...]
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.revision} #{self.index} {', '.join(self.reasons)} on {', '.join(self.relations)} ({self.sql_excerpt})"

    def to_dict(self) -> dict[str, object]:
        return {"revision": self.revision, "index": self.index, "sql": self.sql_excerpt,
                "relations": list(self.relations), "reasons": list(self.reasons)}


def failing(result: PlanResult, fail_on: Iterable[str] | None) -> list[FailOnHit]:
    """The statements whose locks `fail_on` (words of FAIL_ON_CHOICES) names: a mode matches
    exactly, `rewrite` a rewritten relation, `blocks-reads`/`blocks-writes` what a lock blocks."""
    wanted = set(fail_on or ())
    hits = []
    for statement in result.statements():
        relations: list[str] = []
        reasons: list[str] = []
        for lock in statement.locks:
            found = []
            if lock.mode is not None and mode_word(lock.mode) in wanted:
                found.append(lock.mode)
            if lock.rewritten and "rewrite" in wanted:
                found.append("rewrite")
            if "blocks-reads" in wanted and "reads" in lock.blocks:
                found.append("blocks reads")
            if "blocks-writes" in wanted and "writes" in lock.blocks:
                found.append("blocks writes")
            if found:
                relations.append(lock.relation)
                reasons.extend(r for r in found if r not in reasons)
        if relations:
            hits.append(FailOnHit(statement.revision, statement.index, statement.sql_excerpt, tuple(relations), tuple(reasons)))
    return hits
