"""Import path kept for the released revisions, which import `trackschema.migration_ops`:
the code lives in `trackschema.migrations.ops`."""

from trackschema.migrations.ops import execute_sql_file, local_timeouts, read_sql, refuse_data_loss

__all__ = ["execute_sql_file", "local_timeouts", "read_sql", "refuse_data_loss"]
