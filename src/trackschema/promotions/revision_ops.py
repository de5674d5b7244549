"""Operations promotion revisions are made of (expand, gate, validate, switch, contract).

The released revisions 0020–0023 do not import this module: they use the frozen copy in
`released_2026_11`, so editing a function here cannot change what they do. A new revision
may build on these functions; once it is released, pin it the same way (a frozen copy
listed in alembic/released.sha256).

Each function emits SQL through `op.execute`, built from the declarations, so it works
online and in offline `--sql` mode alike. Where a step needs to read the database (the
NULL-rate gate), the reading happens server-side in a DO block, so a generated script is
as safe as an online run. Steps that run outside a transaction (VALIDATE, CREATE INDEX
CONCURRENTLY, batched resyncs) are idempotent: after a lock timeout env.py reruns the
whole revision, including the parts an autocommit block already committed.

Function bodies are never generated here: revisions install them from versioned files
under sql/ (see `migration_ops.execute_sql_file`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op
from psycopg import sql
from sqlalchemy import text

from trackschema.migration_ops import execute_sql_file
from trackschema.promotions import expressions as ex
from trackschema.promotions.declarations import DUAL_WRITE_TRIGGERS, Promotion, by_table

# Signatures of the promotion helper functions the expand revision installs.
HELPER_FUNCTIONS = ("jsonb_promote_text(jsonb, text[])", "jsonb_promote_uuid(jsonb)", "jsonb_promotion_problem(jsonb, text, text[])")

# A table with at most this many rows still to fill does not hold up validate or switch:
# the revision fills them itself (one UPDATE, in its own short transaction). Operators can
# change it per database or session with the setting trackschema.inline_fill_limit (0
# turns inline filling off).
INLINE_FILL_LIMIT = 10_000


def _r(fragment: sql.Composable) -> str:
    return ex.render(fragment)


def _ident(*names: str) -> str:
    return _r(sql.Identifier(*names))


# --- expand ------------------------------------------------------------------------------

BOOKKEEPING = """
-- Rows whose JSON value could not be promoted, and why (one row per promotion and row;
-- refreshed when the value changes). A reject whose row has since been fixed or deleted
-- is stale: progress and listings ignore it and `backfill run` deletes it.
CREATE TABLE trackschema.promotion_rejects (
    promotion  text NOT NULL,
    row_id     uuid NOT NULL,
    value      jsonb,
    reason     text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (promotion, row_id)
);

-- Where each promotion's backfill pass stands: pages [0, next_page) of the table as it
-- was stored when the pass started (relfilenode; a rewrite such as VACUUM FULL starts a
-- new pass) are done. Updated in the same transaction as the batch it records.
CREATE TABLE trackschema.backfill_checkpoints (
    promotion   text PRIMARY KEY,
    table_name  text NOT NULL,
    relfilenode oid NOT NULL,
    pass        integer NOT NULL DEFAULT 1,
    next_page   bigint NOT NULL DEFAULT 0,
    end_page    bigint NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    advanced_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- One row per committed backfill batch, written in the batch's own transaction: a batch
-- that rolled back (Ctrl-C, kill -9, lock timeout) leaves no row, one that committed
-- leaves exactly one. rows_done: rows the batch promoted or found unpromotable.
CREATE TABLE trackschema.backfill_batches (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name    text NOT NULL,
    promotions    text[] NOT NULL,
    first_page    bigint NOT NULL,
    end_page      bigint NOT NULL,
    rows_done  integer NOT NULL,
    rows_rejected integer NOT NULL,
    seconds       double precision NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX backfill_batches_table_committed ON trackschema.backfill_batches (table_name, committed_at);
"""

DROP_BOOKKEEPING = """
DROP TABLE trackschema.backfill_batches;
DROP TABLE trackschema.backfill_checkpoints;
DROP TABLE trackschema.promotion_rejects;
"""


def add_columns(promotions: list[Promotion]) -> None:
    """Nullable columns without defaults: a catalog-only change (no rewrite, brief lock)."""
    for table, ps in by_table(promotions).items():
        adds = sql.SQL(", ").join(
            sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(p.column), sql.SQL(p.sql_type)) for p in ps
        )
        op.execute(_r(sql.SQL("ALTER TABLE {} {}").format(sql.Identifier(table), adds)))


def drop_columns(promotions: list[Promotion]) -> None:
    for table, ps in by_table(promotions).items():
        drops = sql.SQL(", ").join(sql.SQL("DROP COLUMN {}").format(sql.Identifier(p.column)) for p in ps)
        op.execute(_r(sql.SQL("ALTER TABLE {} {}").format(sql.Identifier(table), drops)))


def install_dual_write(function_file: str, trigger_file: str) -> None:
    """The dual-write function and its trigger, from the versioned files the revision names.
    Idempotent (a revision rerun after a lock timeout finds them in place): the function
    file says CREATE OR REPLACE, and an existing trigger is dropped first, in the same
    transaction."""
    execute_sql_file(function_file)
    for table, name in DUAL_WRITE_TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {_ident(name)} ON {_ident(table)}")
    execute_sql_file(trigger_file)


def drop_dual_write() -> None:
    for table, name in DUAL_WRITE_TRIGGERS.items():
        op.execute(f"DROP TRIGGER {_ident(name)} ON {_ident(table)}")
        op.execute(f"DROP FUNCTION {_ident(name)}()")


# --- gates -------------------------------------------------------------------------------


def gate(promotions: list[Promotion], *, max_null_rate: float, action: str) -> None:
    """Refuse (raise in a DO block) while a promotion's NULL rate is above `max_null_rate`.

    The NULL rate counts rows that have the key, an empty column and no recorded reject.
    When a table has at most INLINE_FILL_LIMIT such rows in all (or the setting
    trackschema.inline_fill_limit), the block fills them
    instead (the dual-write trigger records the ones that cannot be promoted) and lets the
    revision go on. Runs server-side, so offline `--sql` output keeps the check. The count
    is a full scan that takes no lock blocking writers: it runs without statement_timeout
    (SET LOCAL: only for the gate's own transaction).
    """
    op.execute("SET LOCAL statement_timeout = 0")
    for table, ps in by_table(promotions).items():
        op.execute(_gate_block(table, ps, max_null_rate, action))


def _gate_block(table: str, ps: list[Promotion], max_null_rate: float, action: str) -> str:
    n = len(ps)
    counts = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE {}), count(*) FILTER (WHERE {})").format(ex.has_key(p), ex.unfilled(p)) for p in ps
    )
    into = ", ".join(f"e{i + 1}, u{i + 1}" for i in range(n))
    scalars = "".join(f"    e{i + 1} bigint;\n    u{i + 1} bigint;\n" for i in range(n))
    fill = _r(ex.fill_statement(table, ps, reference_checked=True))
    names = " ".join(p.name for p in ps)
    labels = sql.SQL(", ").join(sql.Literal(f"{p.table}.{p.column}") for p in ps)
    sources = sql.SQL(", ").join(sql.Literal(p.source) for p in ps)
    hint = f"run `trackschema backfill run {names}` (see `trackschema backfill progress`), then `trackschema upgrade` again"
    return f"""
DO $gate$
DECLARE
{scalars}    eligible bigint[];
    unfilled bigint[];
    labels text[] := ARRAY[{_r(labels)}];
    sources text[] := ARRAY[{_r(sources)}];
    problems text := '';
    filled bigint;
    saved_maintenance text := current_setting('trackschema.maintenance', true);
    inline_limit bigint := coalesce(nullif(current_setting('trackschema.inline_fill_limit', true), '')::bigint, {INLINE_FILL_LIMIT});
BEGIN
    SELECT {_r(counts)} INTO {into} FROM {_ident(table)} t;
    eligible := ARRAY[{", ".join(f"e{i + 1}" for i in range(n))}];
    unfilled := ARRAY[{", ".join(f"u{i + 1}" for i in range(n))}];
    IF (SELECT sum(u) FROM unnest(unfilled) u) BETWEEN 1 AND inline_limit THEN
        -- few rows left: fill them here (a maintenance write, not an application change)
        PERFORM set_config('trackschema.maintenance', 'on', true);
        {fill};
        GET DIAGNOSTICS filled = ROW_COUNT;
        PERFORM set_config('trackschema.maintenance', coalesce(saved_maintenance, ''), true);
        RAISE NOTICE 'trackschema: promoted % rows of {table} inline before {action}', filled;
        RETURN;
    END IF;
    FOR i IN 1..{n} LOOP
        IF unfilled[i] > {max_null_rate!r} * eligible[i] THEN
            problems := problems || CASE WHEN problems = '' THEN '' ELSE '; ' END
                || format('%s is %s%% NULL (%s of %s rows with %s not promoted yet)',
                          labels[i], round(100.0 * unfilled[i] / eligible[i], 1), unfilled[i], eligible[i], sources[i]);
        END IF;
    END LOOP;
    IF problems <> '' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('refusing to {action}: %s; the gate is %s%% NULL', problems, {round(max_null_rate * 100, 4)!r}),
            HINT = {_r(sql.Literal(hint))};
    END IF;
END
$gate$"""


# --- validate ----------------------------------------------------------------------------


def add_type_constraints_not_valid(promotions: list[Promotion]) -> None:
    """CHECK (allowed values) and FOREIGN KEY constraints, NOT VALID: enforced for new writes
    from now on, existing rows checked later by VALIDATE without blocking writes. Idempotent."""
    for p in promotions:
        if p.check_constraint:
            allowed = sql.SQL(", ").join(sql.Literal(v) for v in p.allowed or ())
            definition = sql.SQL("CHECK ({} IN ({}))").format(sql.Identifier(p.column), allowed)
            _add_constraint_if_missing(p.table, p.check_constraint, definition)
        if p.foreign_key and p.reference:
            ref = p.reference
            definition = sql.SQL("FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}").format(
                sql.Identifier(p.column), sql.Identifier(ref.table), sql.Identifier(ref.column), sql.SQL(ref.on_delete)
            )
            _add_constraint_if_missing(p.table, p.foreign_key, definition)


def _add_constraint_if_missing(table: str, name: str, definition: sql.Composable) -> None:
    statement = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(sql.Identifier(table), sql.Identifier(name), definition)
    op.execute(
        f"""
DO $add$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {_r(sql.Literal(table))}::regclass AND conname = {_r(sql.Literal(name))}) THEN
        EXECUTE {_r(sql.Literal(_r(statement)))};
    END IF;
END
$add$"""
    )


def null_invalid_column_values(promotions: list[Promotion]) -> None:
    """Set to NULL the column values the new constraints would reject: values outside the
    allowed list and references to rows that no longer exist (what ON DELETE SET NULL would
    have done had the key existed). The dual-write trigger sees the cleared column, keeps
    the JSON key, and records a reject saying why. Run after the constraints exist (NOT
    VALID), so no new invalid value can arrive behind it; locks only the rows it changes."""
    for p in promotions:
        col = sql.Identifier(p.column)
        if p.allowed:
            allowed = sql.SQL(", ").join(sql.Literal(v) for v in p.allowed)
            cond = sql.SQL("{} NOT IN ({})").format(col, allowed)
        elif p.reference:
            ref = p.reference
            cond = sql.SQL("NOT EXISTS (SELECT 1 FROM {} r WHERE r.{} = t.{})").format(
                sql.Identifier(ref.table), sql.Identifier(ref.column), col
            )
        else:
            continue
        op.execute(_r(sql.SQL("UPDATE {table} AS t SET {col} = NULL WHERE t.{col} IS NOT NULL AND {cond}").format(
            table=sql.Identifier(p.table), col=col, cond=cond)))


def validate_constraints(names: list[tuple[str, str]]) -> None:
    """VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE: writes go on). A no-op when valid."""
    for table, name in names:
        op.execute(f"ALTER TABLE {_ident(table)} VALIDATE CONSTRAINT {_ident(name)}")


def drop_constraints(names: list[tuple[str, str]]) -> None:
    for table, name in names:
        op.execute(f"ALTER TABLE {_ident(table)} DROP CONSTRAINT IF EXISTS {_ident(name)}")


def type_constraints(promotions: list[Promotion]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for p in promotions:
        out += [(p.table, c) for c in (p.check_constraint, p.foreign_key) if c]
    return out


def create_indexes_concurrently(promotions: list[Promotion]) -> None:
    """Partial indexes on the promoted columns, CONCURRENTLY. Call inside autocommit_block.

    Idempotent: an existing valid index is kept (IF NOT EXISTS); an INVALID one, left by a
    failed concurrent build, is dropped and built again. Online the drop is concurrent
    too; in offline mode (no database to look at) the script carries a DO block that drops
    an invalid index with a plain DROP INDEX (a brief lock; DROP INDEX CONCURRENTLY cannot
    run inside DO).
    """
    offline = op.get_context().as_sql
    for p in promotions:
        if offline:
            op.execute(
                f"""
DO $drop_invalid$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass({_r(sql.Literal(p.index))}) AND NOT indisvalid) THEN
        EXECUTE {_r(sql.Literal('DROP INDEX ' + _ident(p.index)))};
    END IF;
END
$drop_invalid$"""
            )
        else:
            invalid = op.get_bind().execute(
                text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": p.index}
            ).scalar()
            if invalid:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_ident(p.index)}")
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {_ident(p.index)} ON {_ident(p.table)} ({_ident(p.column)}) "
            f"WHERE {_ident(p.column)} IS NOT NULL"
        )


def drop_indexes_concurrently(promotions: list[Promotion]) -> None:
    for p in promotions:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_ident(p.index)}")


@contextmanager
def no_statement_timeout() -> Iterator[None]:
    """Lift statement_timeout for statements that do not block writers (VALIDATE, CREATE
    INDEX CONCURRENTLY, batched resyncs) on large tables; restore the session's value after.
    Session-level SETs, for use inside an autocommit block; the saved value lives in the
    session too, so offline scripts behave the same."""
    op.execute("SELECT set_config('trackschema.saved_statement_timeout', current_setting('statement_timeout'), false)")
    op.execute("SET statement_timeout = 0")
    try:
        yield
    finally:
        op.execute("SELECT set_config('statement_timeout', current_setting('trackschema.saved_statement_timeout'), false)")


# --- switch ------------------------------------------------------------------------------


def in_step_constraints(promotions: list[Promotion]) -> list[tuple[str, str]]:
    return [(p.table, p.in_step_constraint) for p in promotions]


def add_in_step_constraints_not_valid(promotions: list[Promotion]) -> None:
    """CHECK that the column agrees with the JSON key (see `expressions.in_step`)."""
    for p in promotions:
        _add_constraint_if_missing(p.table, p.in_step_constraint, sql.SQL("CHECK ({})").format(ex.in_step(p)))


# --- contract (downgrade) ----------------------------------------------------------------

RESYNC_PAGES = 2_000


def resync(promotions: list[Promotion]) -> None:
    """Bring rows written while the dual-write path was absent back in step, in batches of
    RESYNC_PAGES pages, each committed on its own (call inside autocommit_block).

    A row is out of step when its column differs from the promoted key. Each such row is
    touched (`SET metadata = metadata`): the dual-write trigger then applies its rules (a
    non-NULL column wins and rewrites the key; an empty column is filled from the key, or
    gets a reject). Marked as maintenance, so updated_at triggers leave the rows alone.
    """
    for table, ps in by_table(promotions).items():
        out_of_step = sql.SQL(" OR ").join(
            sql.SQL("{} IS DISTINCT FROM {}").format(ex.column(p), ex.promoted_value(p)) for p in ps
        )
        json_column = ps[0].json_column
        touch = sql.SQL(
            "UPDATE {table} AS t SET {json} = t.{json} WHERE t.ctid >= format('(%s,0)', first_page)::tid "
            "AND t.ctid < format('(%s,0)', first_page + {step})::tid AND ({cond})"
        ).format(table=sql.Identifier(table), json=sql.Identifier(json_column), step=sql.Literal(RESYNC_PAGES), cond=out_of_step)
        op.execute(
            f"""
DO $resync$
DECLARE
    pages bigint := pg_relation_size({_r(sql.Literal(table))}::regclass) / current_setting('block_size')::bigint;
BEGIN
    FOR first_page IN 0..pages BY {RESYNC_PAGES} LOOP
        PERFORM set_config('trackschema.maintenance', 'on', true);
        {_r(touch)};
        COMMIT;
    END LOOP;
END
$resync$"""
        )
