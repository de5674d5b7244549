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


def render(fragment: sql.Composable) -> str:
    """The SQL text of a fragment (identifiers quoted, literals escaped, no connection needed)."""
    return fragment.as_string(None)


def _qualified(alias: str | None, name: str) -> sql.Composable:
    return sql.Identifier(name) if alias is None else sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))


def column(p: Promotion, alias: str | None = "t") -> sql.Composable:
    """The promoted column (qualified by `alias`; unqualified when None, as in a CHECK)."""
    return _qualified(alias, p.column)


def value(p: Promotion, alias: str | None = "t") -> sql.Composable:
    """The JSON value (jsonb; SQL NULL when the key is missing)."""
    return sql.SQL("{} -> {}").format(_qualified(alias, p.json_column), sql.Literal(p.json_key))


def has_key(p: Promotion, alias: str | None = "t") -> sql.Composable:
    """The row has a value for the key: present and not JSON null ("eligible")."""
    return sql.SQL("({} ->> {}) IS NOT NULL").format(_qualified(alias, p.json_column), sql.Literal(p.json_key))


def _allowed(p: Promotion) -> sql.Composable:
    return sql.SQL("{}::text[]").format(sql.Literal(list(p.allowed))) if p.allowed else sql.SQL("NULL::text[]")


def promoted_value(p: Promotion, alias: str | None = "t") -> sql.Composable:
    """The promoted value by type alone (no reference lookup); NULL when not promotable."""
    if p.sql_type == "text":
        return sql.SQL("jsonb_promote_text({}, {})").format(value(p, alias), _allowed(p))
    if p.sql_type == "uuid":
        return sql.SQL("jsonb_promote_uuid({})").format(value(p, alias))
    raise ValueError(f"promotion {p.name}: unsupported type {p.sql_type}")


def promoted(p: Promotion, alias: str = "t") -> sql.Composable:
    """The value the column must hold: promoted by type and, for a reference, existing."""
    base = promoted_value(p, alias)
    if p.reference is None:
        return base
    ref = p.reference
    return sql.SQL("(SELECT r.{col} FROM {table} r WHERE r.{col} = {base})").format(
        col=sql.Identifier(ref.column), table=sql.Identifier(ref.table), base=base
    )


def problem(p: Promotion, alias: str = "t") -> sql.Composable:
    """Why the value cannot be promoted (one line), for a row whose `promoted()` is NULL."""
    type_problem = sql.SQL("jsonb_promotion_problem({}, {}, {})").format(value(p, alias), sql.Literal(p.sql_type), _allowed(p))
    if p.reference is None:
        return type_problem
    return sql.SQL("coalesce({}, {} || {})").format(
        type_problem, sql.Literal(f"no {p.reference.table} row has {p.reference.column} "), sql.SQL("{}::text").format(promoted_value(p, alias))
    )


def needs_fill(p: Promotion, alias: str | None = "t") -> sql.Composable:
    """The row has the key but an empty column: the backfill's work (fill or reject)."""
    return sql.SQL("({} IS NULL AND {})").format(column(p, alias), has_key(p, alias))


def rejected(p: Promotion, alias: str = "t") -> sql.Composable:
    """A reject is recorded for this row and promotion."""
    return sql.SQL("EXISTS (SELECT 1 FROM trackschema.promotion_rejects r WHERE r.promotion = {} AND r.row_id = {}.id)").format(
        sql.Literal(p.name), sql.Identifier(alias))


def unfilled(p: Promotion, alias: str = "t") -> sql.Composable:
    """The row has the key, an empty column and no reject: work left (the NULL-rate numerator)."""
    return sql.SQL("({} AND NOT {})").format(needs_fill(p, alias), rejected(p, alias))


def in_step(p: Promotion) -> sql.Composable:
    """The switch revision's CHECK: the column agrees with the JSON value.

    Without a reference both directions hold (column = promoted value, NULLs included).
    With a reference only "a non-NULL column equals the key" can be a CHECK: whether a
    key's row exists is not an immutable fact; the NULL rate covers the other direction.
    """
    col, val = column(p, None), promoted_value(p, None)
    if p.reference is None:
        return sql.SQL("{} IS NOT DISTINCT FROM {}").format(col, val)
    return sql.SQL("{} IS NULL OR {} = {}").format(col, col, val)


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
