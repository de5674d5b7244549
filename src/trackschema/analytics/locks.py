"""Advisory-lock keys shared with the analytics SQL functions (two-int form: classid, objid)."""

AGGREGATE_LOCK_CLASS = 0x74726B10  # aggregate_analytics_daily: one run per day (objid: days since 2000-01-01)
HORIZON_LOCK_CLASS = 0x74726B11  # analytics_ingest holds it shared, retention exclusive to move the horizon
