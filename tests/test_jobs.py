"""The job registry: schedules are checked at registration, the SQL side uses the same lock."""

from __future__ import annotations

import pytest

from trackschema import jobs
from trackschema.settings import project_root


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "0 2 * * *", "0 2 * * 0", "15 3 1 * *", "0 0-6/2 * * 1,3,5", "30 4 * * 7"])
def test_valid_schedules_register(schedule: str) -> None:
    jobs.check_schedule(schedule)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("*/5 * * *", "five cron fields"),
        ("every 5 minutes", "five cron fields"),
        ("61 * * * *", "61 is outside 0-59"),
        ("0 24 * * *", "24 is outside 0-23"),
        ("0 2 * 13 *", "13 is outside 1-12"),
        ("0 2 * * mon", "cannot read field 'mon'"),
    ],
)
def test_bad_schedules_fail_at_registration(schedule: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jobs.job("bad", schedule=schedule, description="never registered")


def test_every_registered_job_has_a_valid_schedule_and_the_registry_holds_ours() -> None:
    registry = jobs.registry()
    assert {"vacuum-analyze", "refresh-matviews"} <= set(registry)
    for spec in registry.values():
        jobs.check_schedule(spec.schedule)
    assert registry["refresh-matviews"].sql == "CALL trackschema.refresh_matviews()"


def test_sql_entry_points_use_the_cli_job_lock() -> None:
    """`trackschema jobs run` and trackschema.job_run_begin() must contend for one lock."""
    for name in ("job_run_begin.v1.sql", "job_run_end.v1.sql"):
        text = (project_root() / "sql" / "functions" / name).read_text()
        assert f"({jobs.JOB_LOCK_CLASS}, hashtext(" in text
