"""The partition declaration (TRACKSCHEMA_PARTITIONED_TABLES)."""

from __future__ import annotations

import pytest

from trackschema.errors import ConfigurationError
from trackschema.runtime.settings import PartitionDeclaration, partition_declarations


def test_default_is_activity_log_and_analytics_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKSCHEMA_PARTITIONED_TABLES", raising=False)
    assert partition_declarations() == (
        PartitionDeclaration("activity_log", "occurred_at"),
        PartitionDeclaration("analytics_events", "created_at"),
    )


def test_optional_tables_keys_and_default_partitions() -> None:
    assert partition_declarations("activity_log, calendar_events+default, public.audit:at") == (
        PartitionDeclaration("activity_log", "occurred_at"),
        PartitionDeclaration("calendar_events", "start_at", default_partition=True),
        PartitionDeclaration("public.audit", "at"),
    )
    assert partition_declarations("none") == () and partition_declarations("") == ()


@pytest.mark.parametrize("spec", ["unknown_table", "activity_log+maybe", "activity_log:occurred at", "x;drop:y"])
def test_bad_declarations_say_how_to_write_them(spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"write table\[:key\]\[\+default\]"):
        partition_declarations(spec)
