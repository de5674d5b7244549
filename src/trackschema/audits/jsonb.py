"""jsonb — JSONB columns filtered or joined on most: candidates for promoting a key to a column.

What it reads: `pg_stat_statements`. A statement whose WHERE or JOIN condition applies a
JSONB operator (`->>`, `->`, `#>>`, `@>`, `?`) to a JSONB column counts towards that
column, weighted by its calls. pg_stat_statements replaces constants with `$1`, `$2`...,
so the statement text no longer says *which* key was used: for each candidate column the
report adds the most common top-level keys from a sample of its rows, and the example
statement shows the shape of the filter. Confirm the key from the application's code or
`log_min_duration_statement` output before promoting.

What to do with a candidate: declare a promotion (see `trackschema backfill`): a typed
column with dual-write, a batched backfill, constraints and an index built CONCURRENTLY.

Where pg_stat_statements is missing, the report says how to enable it. On Citus run it
against the coordinator: its pg_stat_statements records the application's statements as
sent (the workers record the shard queries Citus generates from them).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from trackschema.runtime.db import connect
from trackschema.runtime.settings import Settings

HOW_TO_ENABLE = (
    "add pg_stat_statements to shared_preload_libraries in postgresql.conf, restart the server, "
    "then run CREATE EXTENSION pg_stat_statements; in this database and let the application run for a while"
)
SAMPLE_ROWS = 10_000

_RELATION = re.compile(r'\b(?:from|join)\s+((?:"?\w+"?\.)?"?\w+"?)(?:\s+(?:as\s+)?(?!where\b|join\b|on\b|left\b|right\b|inner\b|full\b|cross\b|group\b|order\b|limit\b)(\w+))?', re.I)
_JSONB_USE = re.compile(r'(?:\b(\w+)\.)?\b(\w+)\s*(->>|->|#>>|#>|@>|\?\||\?&|\?)\s*', re.I)
_CONDITION_START = re.compile(r"\b(where|on)\b", re.I)
_CONDITION_END = re.compile(r"\b(group\s+by|order\s+by|limit|returning|union|having|window|offset)\b", re.I)


@dataclass(frozen=True)
class JsonbCandidate:
    table: str
    column: str
    calls: int
    statements: int
    example: str
    common_keys: list[tuple[str, float]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return ", ".join(f"{k} ({share:.0%})" for k, share in self.common_keys[:3]) or "?"

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["common_keys"] = [{"key": k, "share_of_rows": round(s, 4)} for k, s in self.common_keys]
        return data


@dataclass(frozen=True)
class JsonbReport:
    available: bool
    how_to_enable: str
    candidates: list[JsonbCandidate]

    def to_dict(self) -> dict[str, object]:
        return {"available": self.available, "how_to_enable": self.how_to_enable if not self.available else None,
                "candidates": [c.to_dict() for c in self.candidates]}


def condition_text(query: str) -> str:
    """The parts of a statement after WHERE or ON, up to GROUP BY/ORDER BY/LIMIT..."""
    parts = []
    for match in _CONDITION_START.finditer(query):
        rest = query[match.end():]
        end = _CONDITION_END.search(rest)
        parts.append(rest[: end.start()] if end else rest)
    return " ".join(parts)


def jsonb_uses(query: str, jsonb_columns: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(table, column) pairs whose JSONB column a statement filters or joins on."""
    aliases: dict[str, str] = {}
    tables_in_query = []
    for relation, alias in _RELATION.findall(query):
        table = relation.replace('"', "").split(".")[-1]
        tables_in_query.append(table)
        aliases[table] = table
        if alias:
            aliases[alias] = table
    found = set()
    for qualifier, column, _op in _JSONB_USE.findall(condition_text(query)):
        if qualifier and qualifier in aliases:
            candidates = [aliases[qualifier]]
        else:
            candidates = tables_in_query
        for table in candidates:
            if column in jsonb_columns.get(table, set()):
                found.add((table, column))
    return found


def _available(conn: psycopg.Connection) -> bool:
    if conn.execute("SELECT to_regclass('pg_stat_statements') IS NULL").fetchone()[0]:  # type: ignore[index]
        return False
    try:
        conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
    except psycopg.errors.ObjectNotInPrerequisiteState:  # extension created but not preloaded
        return False
    return True


def common_keys(conn: psycopg.Connection, table: str, column: str, limit: int = 5) -> list[tuple[str, float]]:
    """Top-level keys of a sample of rows, with the share of sampled rows that have each."""
    query = sql.SQL(
        """WITH sample AS (SELECT {col} AS doc FROM {tbl} WHERE jsonb_typeof({col}) = 'object' LIMIT %s)
           SELECT k, count(*)::float8 / greatest((SELECT count(*) FROM sample), 1)
             FROM sample, jsonb_object_keys(doc) AS k GROUP BY k ORDER BY 2 DESC, 1 LIMIT %s"""
    ).format(col=sql.Identifier(column), tbl=sql.Identifier(table))
    return [(k, share) for k, share in conn.execute(query, (SAMPLE_ROWS, limit)).fetchall()]


def analyse(conn: psycopg.Connection) -> JsonbReport:
    if not _available(conn):
        return JsonbReport(False, HOW_TO_ENABLE, [])
    jsonb_columns: dict[str, set[str]] = defaultdict(set)
    for table, column in conn.execute(
        """SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE a.atttypid = 'jsonb'::regtype AND a.attnum > 0 AND NOT a.attisdropped
             AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'trackschema')"""
    ).fetchall():
        jsonb_columns[table].add(column)
    totals: dict[tuple[str, str], list] = {}
    for query, calls in conn.execute(
        "SELECT query, calls FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchall():
        for use in jsonb_uses(query, jsonb_columns):
            entry = totals.setdefault(use, [0, 0, query])
            entry[0] += calls
            entry[1] += 1
            if calls > 0 and len(query) < len(entry[2]):
                entry[2] = query
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    return JsonbReport(
        True, HOW_TO_ENABLE,
        [JsonbCandidate(t, c, calls, n, " ".join(example.split()), common_keys(conn, t, c)) for (t, c), (calls, n, example) in ranked],
    )


def candidates(settings: Settings) -> JsonbReport:
    with connect(settings.require_url()) as conn:
        return analyse(conn)
