"""Analytics: analytics_ingest reads event times as ISO 8601 only.

`analytics_ingest(jsonb)` v1 (revision 0012) read the time strings of events (first_seen,
viewed_at, clicked_at, last_seen) with PostgreSQL's timestamptz input, which also takes
'now', 'today', 'yesterday', 'tomorrow', Julian dates ('J2461379'), time-zone names
('2026-12-04 10:00 PST8PDT') and dates without a time of day: v1 accepted them as event
times. v2 (sql/functions/analytics_ingest.v2.sql) first matches every time string against
one ISO 8601 regular expression (date, 'T' or space, hh:mm[:ss[.fraction]], optional 'Z'
or +hh:mm / +hhmm / +hh offset; no offset = UTC); anything else is the existing reject
`unparsable <field> "<value>"`, recorded in `trackschema.analytics_ingest_rejects`, never
accepted and never an aborted batch. Epoch milliseconds (JSON numbers) are read as before.

Catalog-only: CREATE OR REPLACE keeps the function's owner and grants (EXECUTE revoked
from PUBLIC by 0012, granted to the ingest role by 0013). No stored row is re-read:
events accepted before this revision keep the times v1 gave them.

Downgrade puts v1 back, also with CREATE OR REPLACE, so the grants survive both ways.

Revision ID: 0070_analytics_ingest_iso_times
Revises: 0060_analytics_job_procedures
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

from trackschema.migration_ops import execute_sql_file, read_sql

revision: str = "0070_analytics_ingest_iso_times"
down_revision: str | None = "0060_analytics_job_procedures"
branch_labels = None
depends_on = None

V1 = "functions/analytics_ingest.v1.sql"
V1_CREATE = "CREATE FUNCTION analytics_ingest("


def upgrade() -> None:
    execute_sql_file("functions/analytics_ingest.v2.sql")


def downgrade() -> None:
    # v1 is released and says CREATE FUNCTION, which fails while v2 exists; DROP + CREATE
    # would lose the EXECUTE grant 0013 made to the ingest role (and the REVOKE from PUBLIC
    # of 0012). So reinstall v1's exact text with only its leading CREATE FUNCTION made
    # CREATE OR REPLACE: owner and grants stay as they are.
    text = read_sql(V1)
    if text.count(V1_CREATE) != 1:
        raise RuntimeError(f"sql/{V1}: expected one {V1_CREATE!r}, the released file is not what this revision was written for")
    op.execute(text.replace(V1_CREATE, "CREATE OR REPLACE FUNCTION analytics_ingest(", 1))
