"""The promotions' operations' options, declared apart from the engine: the CLI builds its
commands from them at start-up, and the engine's modules load the promotion declarations,
whose frozen copy imports Alembic (half of a command's start-up time).

`backfill.BackfillOptions`, `progress.ProgressOptions` and `progress.RejectsOptions` are
these same classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trackschema.operations.inputs import Count, Duration, Flag, Names, Rate
from trackschema.operations.options import Options, option

REJECT_LIMIT = Count(1, 100_000)


@dataclass(frozen=True)
class BackfillOptions(Options):
    """How a run behaves. Durations are seconds. The CLI (`backfill run`) and the
    promotion-backfill job both parse their inputs through these declarations."""

    operation = "promotion-backfill"
    names: tuple[str, ...] | None = option(Names(), None, "Promotions to run, comma-separated (default: all).")
    batch_time: float = option(Duration(minimum=0.005, maximum=60), 0.2, "Target duration of one batch; the size adapts to it.")
    sleep: float = option(Duration(maximum=3600, zero_allowed=True), 0.0, "Pause between batches (throttling).")
    lock_timeout: float = option(Duration(minimum=0.01, maximum=600), 0.2, "How long a batch may wait for a row lock.")
    statement_timeout: float = option(Duration(minimum=0.1, maximum=86400), 60.0, "Longest a single batch may run.")
    lock_wait: float = option(Duration(maximum=3600, zero_allowed=True), 10.0, "How long to wait for another backfill.")
    max_retries: int = option(Count(0, 1000), 20, "Retries of a batch after a lock timeout or deadlock.")
    first_batch_rows: int = option(Count(1, 1_000_000), 2_000, "Rows in the first batch.")
    # at most 1M pages (8 GB): even 291 rows a page stay below 2^31, the integer trackschema.backfill_batches.rows_done holds
    max_batch_pages: int = option(Count(1, 1_000_000), 50_000, "Largest batch, in heap pages.")
    restart: bool = option(Flag(), False, "Start a new pass from the first page.")
    retry_rejects: bool = option(Flag(), False, "Forget recorded rejects and try those rows again.")

    def check(self, label: Callable[[str], str]) -> None:
        if self.names:
            from trackschema.promotions.declarations import select  # the declarations load Alembic: only when needed

            select(list(self.names))  # an unknown promotion is refused here, before any run is recorded


REJECT_LIMIT = Count(1, 100_000)


@dataclass(frozen=True)
class ProgressOptions(Options):
    """`backfill progress`."""

    operation = "backfill progress"
    fail_above: float | None = option(Rate(), None, "Exit 1 when a NULL rate is above RATE (0.01 or 1%).")


@dataclass(frozen=True)
class RejectsOptions(Options):
    """`backfill rejects`."""

    operation = "backfill rejects"
    limit: int = option(REJECT_LIMIT, 100, "How many rejects to show.")
