"""Import path kept for the released revisions, which import `trackschema.settings`:
the code lives in `trackschema.runtime.settings`."""

from trackschema.runtime.settings import PARTITIONED_TABLES_ENV, Settings, partition_declarations, pg_interval

__all__ = ["PARTITIONED_TABLES_ENV", "Settings", "partition_declarations", "pg_interval"]
