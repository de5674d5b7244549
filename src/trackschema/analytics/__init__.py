"""Analytics pipeline: batch ingestion, daily roll-ups, dashboards, retention, legacy move.

The work happens in SQL functions installed by revisions 0010-0014 (see `sql/functions/`);
these modules call them, loop over batches and days with one transaction each, and return
dataclasses for the CLI to render:

- `ingest`: `analytics_ingest(batch)` per JSON line (`trackschema ingest FILE|-`);
- `rollups`: `aggregate_analytics_daily(day)` for one day, a range, or the dirty days;
- `dashboard`: a user's real-time stats (closed days from roll-ups, today from raw rows);
- `retention`: raw rows older than N days deleted in batches, roll-ups kept;
- `legacy`: the legacy `analytics_events` rows moved into the normalized tables and back.

Importing this package registers its jobs (`aggregate-daily`, `retention`,
`legacy-analytics-move`) with `trackschema.jobs`.
"""

from __future__ import annotations

from trackschema.analytics import jobs as _jobs  # noqa: F401 - registers the jobs

