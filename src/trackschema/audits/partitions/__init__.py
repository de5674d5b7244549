"""The partition audit: the health of the tables trackschema partitioned, as findings.

One finding kind per module (its docstring is the user's documentation). Reads the
catalog and trackschema.partitioned_tables only; counts the rows of default partitions.
Reports nothing before revision 0030.
"""

from __future__ import annotations

import psycopg

from trackschema.audits import Finding
from trackschema.audits.partitions import conversion_incomplete, default_rows, detach_pending, running_out
from trackschema.partitions.monthly import health

CHECKS = (conversion_incomplete, default_rows, running_out, detach_pending)
KINDS: tuple[str, ...] = tuple(check.KIND for check in CHECKS)
DOCUMENTED: tuple[str, ...] = tuple(check.__name__ for check in CHECKS)


def audit_partitions_on(conn: psycopg.Connection) -> list[Finding]:
    """Every partition finding, table by table; never changes anything."""
    items = health(conn)
    return [finding for check in CHECKS for finding in check.check(items)]
