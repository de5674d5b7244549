"""Citus: the distribution of every table, declared in the history (docs/citus.md#layout).

On a Citus coordinator (the history 0001..0090 ran there as on one node: local tables),
each table of `trackschema.citus.layout.LAYOUT_0100` becomes what it declares: distributed
by its column in its co-location group, a reference table, or left local; partitioned
tables with their partitions. Keys Citus requires to include the distribution column are
reshaped, foreign keys that would span shards are dropped (listed in the layout), and the
tracking triggers become row triggers (functions/install_entity_tracking_rows.v1.sql: the
statement triggers' transition tables do not work on shards). `trackschema.citus.distribute` says
how, in one transaction; a worker that does not answer stops it before anything changed.

On plain PostgreSQL (no extension citus) upgrade and downgrade are no-ops that say so in
one NOTICE.

Downgrade: `undistribute_table` for every placed table (reference tables too), the keys and
foreign keys of 0090 restored, the materialized views re-created, the statement tracking
triggers back (install_entity_tracking v2). No row is lost either way.

Locks: ACCESS EXCLUSIVE on every placed table for the whole transaction (Citus copies each
table's rows into its shards): run it in a quiet window; the time is the copy of the rows
(docs/citus.md#measured).

Revision ID: 0100_citus_distribution
Revises: 0090_tracking_outbox
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op
from trackschema.citus import distribute
from trackschema.citus.layout import LAYOUT_0100

revision: str = "0100_citus_distribution"
down_revision: str | None = "0090_tracking_outbox"
branch_labels = None
depends_on = None


# Row-level tracking on the shards (the statement triggers' transition tables do not work there).
ROWS_FUNCTION_FILE = "functions/install_entity_tracking_rows.v1.sql"


def upgrade() -> None:
    op.execute(distribute.upgrade_sql(LAYOUT_0100, revision, rows_function_file=ROWS_FUNCTION_FILE))


def downgrade() -> None:
    op.execute(distribute.downgrade_sql(LAYOUT_0100, revision))
