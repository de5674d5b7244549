"""SQL fragments for a promotion, built from its declaration.

One definition of "has the key", "promoted value", "why it cannot be promoted" and "in
step", shared by the backfill batches, the NULL-rate queries, the validate/switch gates
and the in-step constraint. The promotion rules themselves live in the inlinable SQL
functions `jsonb_promote_text`, `jsonb_promote_uuid` and `jsonb_promotion_problem`
(sql/functions/*.v1.sql), which the dual-write trigger calls too.

Fragments are `psycopg.sql.Composable`; `render()` turns one into text for revisions,
which run through `op.execute` (online and in offline `--sql` mode alike).
"""

from __future__ import annotations

from psycopg import sql

from trackschema.promotions.declarations import Promotion
from trackschema.promotions.released_2026_11 import (
    _allowed,
    column,
    has_key,
    in_step,
    needs_fill,
    promoted,
    promoted_value,
    rejected,
    render,
    unfilled,
    value,
)

__all__ = ["column", "fill_statement", "has_key", "in_step", "needs_fill", "problem", "promoted", "promoted_value",
           "rejected", "render", "unfilled", "value"]

# The fragments the released revisions use are the frozen ones (released_2026_11), so a
# backfill and the constraints those revisions created always agree; what only the live
# code needs (reject reasons, ctid-ranged fills) is defined here.


def problem(p: Promotion, alias: str = "t") -> sql.Composable:
    """Why the value cannot be promoted (one line), for a row whose `promoted()` is NULL."""
    type_problem = sql.SQL("jsonb_promotion_problem({}, {}, {})").format(value(p, alias), sql.Literal(p.sql_type), _allowed(p))
    if p.reference is None:
        return type_problem
    return sql.SQL("coalesce({}, {} || {})").format(
        type_problem, sql.Literal(f"no {p.reference.table} row has {p.reference.column} "), sql.SQL("{}::text").format(promoted_value(p, alias))
    )


def fill_statement(table: str, ps: list[Promotion], *, reference_checked: bool, ranged: bool = False) -> sql.Composable:
    """UPDATE that fills the empty columns of `ps` from their keys.

    It writes every row with work left (`unfilled`), including rows whose value cannot be
    promoted (their column stays NULL): the dual-write trigger sees those and records the
    reject, after which they no longer count as work left, so no row is written twice.
    `ranged` restricts it to a ctid range given as parameters `lo` and `hi` (psycopg
    placeholders). `reference_checked` promotes a reference only when its row exists
    (needed once the foreign key exists; before, the trigger promotes by form alone).
    """
    sets = sql.SQL(", ").join(
        sql.SQL("{col} = coalesce(t.{col}, {val})").format(
            col=sql.Identifier(p.column), val=promoted(p) if reference_checked else promoted_value(p)
        )
        for p in ps
    )
    where = sql.SQL("({})").format(sql.SQL(" OR ").join(unfilled(p) for p in ps))
    if ranged:
        where = sql.SQL("t.ctid >= %(lo)s::tid AND t.ctid < %(hi)s::tid AND {}").format(where)
    return sql.SQL("UPDATE {table} AS t SET {sets} WHERE {where}").format(table=sql.Identifier(table), sets=sets, where=where)
