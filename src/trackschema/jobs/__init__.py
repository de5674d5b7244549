"""Jobs: the registry and run history (registry), pg_cron and crontab schedules (schedules), maintenance jobs (maintenance)."""
