"""Audits: one check per module, each returning `Finding`s. An audit never changes anything.

A check's docstring is the user's documentation: what is wrong and what to do instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from trackschema.operations.inputs import Flag, InputError
from trackschema.operations.options import Options, option


@dataclass(frozen=True)
class Finding:
    """One problem an audit found, with the exact statement that fixes it.

    `kind` names the check (e.g. `unused`, `missing_trigger`); `index` is empty when the
    finding is about a table or a function rather than an index. `shards` (Citus only) is
    how many shard placements of the index, or of the table, its figures were summed over;
    it is left out of `to_dict` elsewhere.
    """

    kind: str
    table: str
    index: str
    detail: str
    fix: str
    shards: int | None = None

    def to_dict(self) -> dict[str, object]:
        found = asdict(self)
        if self.shards is None:
            del found["shards"]
        return found


@dataclass(frozen=True)
class FindingKinds:
    """An input kind: finding kinds, comma-separated, or `all` for every kind of every audit."""

    def parse(self, option: str, value: Any) -> frozenset[str]:
        from trackschema.audits.indexes import KINDS

        known = set(KINDS) | set(OTHER_KINDS)
        items = value if isinstance(value, (list, tuple, set, frozenset)) else str(value).split(",")
        kinds = {str(k).strip() for k in items if str(k).strip()}
        if "all" in kinds:
            return frozenset(known)
        unknown = sorted(kinds - known)
        if unknown or not kinds:
            shown = unknown[0] if unknown else str(value)
            raise InputError(f"unknown finding kind {shown[:40]!r} in {option}: choose from {', '.join(sorted(known))}, or all")
        return frozenset(kinds)


@dataclass(frozen=True)
class AuditOptions(Options):
    """Every audit command: findings are reported; `fail_on` makes some of them fail the run."""

    operation = "audit"
    fail_on: frozenset[str] | None = option(FindingKinds(), None, "Exit 1 when a finding of these kinds exists (comma-separated, or all).")

    def failing(self, findings: list[Finding]) -> list[Finding]:
        """The findings that fail the run (none without `fail_on`)."""
        return [f for f in findings if self.fail_on and f.kind in self.fail_on]


@dataclass(frozen=True)
class TriggerAuditOptions(AuditOptions):
    """`audit triggers` also keeps `--fail`, its name before `--fail-on` existed."""

    operation = "audit triggers"
    fail: bool = option(Flag(), False, "Same as --fail-on all (kept for existing scripts).")

    def failing(self, findings: list[Finding]) -> list[Finding]:
        return list(findings) if self.fail else super().failing(findings)


def parse_fail_on(text: str | None) -> set[str]:
    """The kinds `--fail-on` names (`all` means every kind of every audit); none for None."""
    return set(FindingKinds().parse("--fail-on", text)) if text else set()


# Kinds reported by audits other than the index audit (triggers, partitions).
OTHER_KINDS: tuple[str, ...] = (
    "missing_updated_at_trigger", "duplicate_updated_at_trigger", "misconfigured_updated_at_trigger",
    "stale_tracking_function", "missing_tracking_trigger", "unused_trigger_function",
    # partitions (trackschema.audits.partitions.KINDS)
    "conversion_incomplete", "default_partition_rows", "partitions_running_out", "detach_pending",
)


def audit_indexes(settings) -> list[Finding]:  # noqa: ANN001 - Settings
    from trackschema.audits.indexes import audit_indexes_on
    from trackschema.runtime.db import connect

    with connect(settings.require_url()) as conn:
        return audit_indexes_on(conn)


def run_all(settings) -> list[Finding]:  # noqa: ANN001 - Settings
    """Every audit over one connection: indexes, triggers, partitions."""
    from trackschema.audits.indexes import audit_indexes_on
    from trackschema.audits.partitions import audit_partitions_on
    from trackschema.audits.triggers import audit_triggers_on
    from trackschema.runtime.db import connect

    with connect(settings.require_url()) as conn:
        return audit_indexes_on(conn) + audit_triggers_on(conn) + audit_partitions_on(conn)
