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


def parse_fail_on(text: str | None) -> set[str]:
    """The kinds `--fail-on` names; `all` means every kind of every audit."""
    from trackschema.audits.indexes import KINDS, parse_kinds

    if text and text.strip() == "all":
        return set(KINDS) | set(OTHER_KINDS)
    known = set(KINDS) | set(OTHER_KINDS)
    kinds = {k.strip() for k in (text or "").split(",") if k.strip()}
    unknown = kinds - known
    if unknown:
        from trackschema.errors import TrackschemaError

        raise TrackschemaError(f"unknown finding kind(s) {', '.join(sorted(unknown))}: choose from {', '.join(sorted(known))} or all")
    return kinds if kinds else parse_kinds(None)


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
