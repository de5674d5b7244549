"""`trackschema plan`: rehearse the pending revisions in a scratch database and report, statement
by statement, the table locks each one takes, how long it holds them, whether it rewrites a
table or index, and what those locks block for other sessions.

How it works:

1. The target is only read: its current revision (alembic_version), its catalog (table sizes,
   columns) and a bounded sample of rows, on a connection with
   `default_transaction_read_only = on`, in one REPEATABLE READ READ ONLY transaction, with
   the migration `lock_timeout` so a sample read never queues behind a DDL lock.
2. A scratch database is created on the same server (or on `--scratch-url`) and migrated with
   `upgrade` to the target's current revision: the schema the revisions build, which is not
   necessarily every object a person added by hand on the target.
3. Up to `sample_rows` rows of every table the pending revisions' SQL names (their offline
   `--sql` rendering) are copied into it, plus the rows those rows reference through foreign
   keys (so a VALIDATE or a gate sees consistent data); triggers are off while loading when
   the role may set `session_replication_role`.
4. The pending revisions run there, through `alembic/env.py` like `upgrade` (advisory lock,
   timeouts, one transaction per revision), on a connection whose statements are observed
   with SQLAlchemy cursor events:
   - in a revision's transaction, after each statement the same session reads `pg_locks` for
     its own backend: a lock taken in a transaction is held until COMMIT, so what is there is
     exactly what the statement took. A lock counts from the statement that first took that
     mode (or a stronger one) on the relation until the transaction's COMMIT;
   - in an `autocommit_block()`, a statement that may run in a transaction block is wrapped in
     one (BEGIN, statement, read `pg_locks`, COMMIT): the same locks, held for the same time,
     as the implicit transaction it would have had;
   - a statement that may not (`CONCURRENTLY`, `VACUUM`, `CALL`, a `DO` block that commits) is
     watched from other sessions (`_Observer`): one polls `pg_locks` for the migrating backend
     while it runs; another, opened just before, holds a snapshot and SHARE UPDATE EXCLUSIVE
     on the tables the statement names, so a statement that asks for such a lock or waits for
     older snapshots (CREATE INDEX / DROP INDEX / DETACH PARTITION CONCURRENTLY, VACUUM) is
     certain to be seen while it waits for it; it lets go as soon as the backend is seen
     waiting. Such a lock is held at most for the statement's duration, which is what is
     reported.
   `pg_class.relfilenode` of every relation is compared before and after each statement: a
   change is a rewrite. Locks on relations created in the same transaction are left out (no
   other session can see those yet), so are catalogs and alembic_version.
5. The scratch database is dropped at the end, also when anything fails.

Durations are measured on the sample, not on the target's data: they show the shape (a lock
held across a slow statement, until the commit), and `target_bytes` says how big the relation
is on the target. Row locks taken by UPDATE/DELETE are not table locks and are not reported.

Here: `PlanOptions`, `PlanError` and `plan()`; the modules hold the parts: `conflicts` (lock
modes, what each blocks, the conflict table), `result` (what `plan` returns, `failing`),
`sample` (steps 1 and 3: what is read from the target and copied), `rehearsal` (step 4).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from trackschema.errors import RevisionError
from trackschema.migrations import runner as migrate
from trackschema.migrations.plan.conflicts import (
    CONFLICTS,
    FAIL_ON_CHOICES,
    MODES,
    READ_MODE,
    STRENGTH,
    WRITE_MODE,
    blocks,
    mode_word,
)
from trackschema.migrations.plan.result import (
    FailOnHit,
    LockTaken,
    PlanError,
    PlanResult,
    RevisionPlan,
    StatementTrace,
    failing,
)
from trackschema.operations.inputs import Count, Names
from trackschema.operations.options import Options, option
from trackschema.runtime import db, scratch
from trackschema.runtime.scratch import ScratchRefused
from trackschema.runtime.settings import ServerUrl, Settings, mask_password
from trackschema.schema.check import declared_partitions, recorded_declaration

__all__ = [
    "CONFLICTS", "FAIL_ON_CHOICES", "MODES", "READ_MODE", "STRENGTH", "WRITE_MODE", "FailOnHit", "LockTaken", "PlanError",
    "PlanOptions", "PlanResult", "RevisionPlan", "ScratchRefused", "StatementTrace", "blocks", "failing",
    "mode_word", "plan",
]

SCRATCH_PREFIX = "trackschema_plan"
# Why plan needs a database on the scratch server, and where else it can make one (a refusal names both).
SCRATCH_NEED = "plan rehearses the pending revisions in a scratch database there"
SCRATCH_HINT = ("give --scratch-url with a server where it may (e.g. `trackschema sandbox start`, then "
                "--scratch-url \"$(trackschema sandbox url)\")")


@dataclass(frozen=True)
class PlanOptions(Options):
    """`plan`: what fails the run (for CI), how many rows to sample, where the scratch database goes."""

    operation = "plan"
    fail_on: tuple[str, ...] | None = option(
        Names(FAIL_ON_CHOICES), None,
        "Exit 1 when a statement takes one of these lock modes on an existing relation, rewrites one, or blocks "
        f"reads/writes; comma-separated, among {', '.join(FAIL_ON_CHOICES)}.",
    )
    sample_rows: int = option(Count(0, 100_000), 100, "Rows copied from the target per table the pending revisions name (plus the rows those reference).")
    scratch_url: str | None = option(ServerUrl(), None, "A server where plan may create its scratch database (default: the target's server).")


def _recorded_declaration(settings: Settings) -> str | None:
    """The partition declaration the target recorded (None before 0030), read read-only."""
    with db.connect(settings.require_url(), application_name="trackschema-plan") as conn:
        conn.execute("SET default_transaction_read_only = on")
        db.set_timeouts(conn.cursor(), lock_timeout=settings.lock_timeout, statement_timeout=settings.statement_timeout)
        return recorded_declaration(conn)


def plan(settings: Settings, target: str = "head", options: PlanOptions | None = None, *,
         extra_version_locations: list[str] | None = None) -> PlanResult:
    """Rehearse the revisions from the target's current revision up to `target` in a scratch
    database and return what each statement locked (see the module docstring). Nothing is
    written to the target. With nothing pending, no scratch database is made."""
    options = options if options is not None else PlanOptions()
    started = time.perf_counter()
    try:
        migrate.check_target("upgrade", target, sql=False, extra_version_locations=extra_version_locations)
    except RevisionError as exc:  # the same targets as `upgrade`, named as this command
        message = str(exc)
        raise RevisionError("plan " + message[len("upgrade "):] if message.startswith("upgrade ") else message) from None
    # the rehearsal and the sampling load Alembic and SQLAlchemy: here, not when the CLI starts
    from alembic.script import ScriptDirectory

    from trackschema.migrations.plan.rehearsal import rehearse
    from trackschema.migrations.plan.sample import copy_sample, named_tables, target_sizes

    settings.require_url()
    current = migrate.current_heads(settings)
    cfg = migrate.alembic_config(settings, extra_version_locations=extra_version_locations)
    script = ScriptDirectory.from_config(cfg)
    with migrate.alembic_errors(settings):
        steps = script._upgrade_revs(target, tuple(current))  # what `upgrade` would run, oldest first
    pending = [step.revision for step in steps]
    if not pending:
        return PlanResult(settings.display_url, current, target, [], seconds={"total": time.perf_counter() - started},
                          fail_on=options.fail_on or ())

    server = options.scratch_url or settings.require_url()
    name = scratch.unique_name(SCRATCH_PREFIX)
    scratch_url = scratch.create_checked(server, name, what=SCRATCH_NEED, hint=SCRATCH_HINT)
    scratch_settings = dataclasses.replace(settings, database_url=scratch_url)
    seconds: dict[str, float] = {}
    try:
        mark = time.perf_counter()
        # built as the target was: with the partitioned tables its 0030 recorded (a pending
        # 0030 still reads TRACKSCHEMA_PARTITIONED_TABLES, as it will on the target)
        with declared_partitions(_recorded_declaration(settings)):
            for head in current:
                migrate.upgrade(scratch_settings, head, extra_version_locations=extra_version_locations)
        seconds["build"] = time.perf_counter() - mark
        mark = time.perf_counter()
        warnings: list[str] = []
        sampled: dict[str, int] = {}
        if options.sample_rows > 0:
            named = named_tables(current, pending[-1].revision, extra_version_locations)
            sampled = copy_sample(settings, scratch_url, named, options.sample_rows, warnings)
        seconds["sample"] = time.perf_counter() - mark
        mark = time.perf_counter()
        tracer = rehearse(scratch_settings, target, extra_version_locations)
        seconds["rehearsal"] = time.perf_counter() - mark
        sizes = target_sizes(settings)
    finally:
        scratch.drop_database(server, name)
    revisions = [
        RevisionPlan(rev.revision, (rev.doc or "").strip().splitlines()[0] if rev.doc else "",
                     [s.freeze(sizes) for s in tracer.statements.get(rev.revision, [])], tracer.seconds.get(rev.revision, 0.0))
        for rev in pending
    ]
    seconds["total"] = time.perf_counter() - started
    return PlanResult(settings.display_url, current, target, revisions, mask_password(scratch_url), options.sample_rows,
                      sampled, warnings, seconds, options.fail_on or ())
