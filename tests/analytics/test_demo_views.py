"""The demo's steps for refreshed views and job history, on a database at head."""

from __future__ import annotations

import psycopg

from tests.conftest import make_settings
from trackschema import demo


def test_refresh_views_and_job_history_steps(db_url: str) -> None:
    settings = make_settings(db_url)
    demo._load_sample(settings)
    detail, (first, second) = demo._refresh_views(settings)  # type: ignore[misc]
    assert first.status == "succeeded" and len(first.result["refreshed"]) == 3
    assert len(second.result["skipped"]) == 3 and second.result["refreshed"] == {}
    with psycopg.connect(db_url) as conn:
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM dashboard_statistics WHERE entity_type = 'project'),
                      (SELECT count(*) FROM dashboard_statistics WHERE entity_type = 'calendar_user'),
                      (SELECT count(*) FROM contact_management_view WHERE address_id IS NOT NULL),
                      (SELECT sum(clicks) FROM analytics_dashboard)"""
        ).fetchone()
    assert counts == (1, 2, 20, 300)
    assert "3 views refreshed concurrently" in detail and "3 skipped as fresh" in detail
    history_detail, runs = demo._job_history(settings)
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert history_detail.startswith("2 runs in trackschema.job_runs")
