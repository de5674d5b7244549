"""`-- squawk-ignore` comments in the offline SQL, each with its one-line reason.

`trackschema upgrade --sql` / `downgrade --sql` print SQL that passes squawk (docs/lint.md):
every finding on a released revision is justified where it stands by a comment placed
right above the line squawk points at:

    -- squawk-ignore prefer-text-field -- <why this one is fine>

Released revisions never change, so the justifications come from here. `annotate(raw)`
adds the comments to the rendering; nothing that runs changes: a comment goes only at the
start of a line outside every string, quoted identifier, dollar-quoted body and block
comment, so removing the added lines gives the raw rendering back byte for byte.

Where the comments come from:

1. `justifications.JUSTIFICATIONS`: one reviewed entry per finding, keyed by revision,
   direction, statement and line, so a new finding (a new revision, another statement,
   another line) is never covered by an old entry.
2. Downgrade drops: undoing revision R drops what R's upgrade created. A DROP in R's
   downgrade gets `ban-drop-*` with that reason, and `lint` checks that R's upgrade really
   creates each dropped object, so a downgrade that drops something older still fails.
3. The first revision's transaction: squawk (>= 2.64) reads Alembic SQL specially: once a
   file holds an `UPDATE alembic_version`, only a transaction containing one counts as a
   revision's own. The first revision records itself with INSERT (a downgrade to base
   with DELETE), so squawk takes that single BEGIN ... COMMIT for statements outside any
   transaction (prefer-robust-stmts). Those statements get the ignore with that reason.

A revision may also emit its own `-- squawk-ignore RULE -- reason` line in its SQL (new
revisions do, see docs/lint.md); it passes through like any comment.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from trackschema.migrations.justifications import JUSTIFICATIONS, Justification

# Reasons of the structural notes (2 and 3 above).
DOWNGRADE_DROP_REASON = "undoing {revision}: drops what its upgrade created (the lint checks it)"
FIRST_TRANSACTION_REASON = (
    "inside the revision's one transaction, with its {write} alembic_version "
    "(squawk counts only transactions with UPDATE alembic_version)"
)

_MARKER = re.compile(r"--\s*Running (upgrade|downgrade) (.*?) -> (.*?)\s*$")
_DOLLAR = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$")
_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    """One line of SQL as the justifications spell it: runs of whitespace as one space."""
    return _WS.sub(" ", text).strip()


@dataclass(frozen=True)
class Statement:
    """One statement of a rendering: where it is, whose it is, and its first line."""

    start: int  # offset of its first character (after leading comments)
    end: int  # offset just past its `;` (or the end of the text)
    first_line: int  # 0-based
    last_line: int
    revision: str | None  # None: Alembic's own preamble (the version table)
    direction: str  # "upgrade" or "downgrade"
    head: str  # its first line, normalized, without a trailing `;`

    def describe(self) -> str:
        return f"{self.revision or 'alembic_version'} ({self.direction}): `{self.head}`"


@dataclass(frozen=True)
class Note:
    """One ignore placed above `line` (0-based, in the raw rendering)."""

    line: int
    rules: tuple[str, ...]
    reason: str
    source: str  # "justification", "downgrade-drop" or "first-transaction"
    statement: Statement
    drops: tuple[tuple[str, str], ...] = ()  # (kind, name) a downgrade drop removes
    entry: Justification | None = None


@dataclass(frozen=True)
class Annotated:
    raw: str
    text: str
    notes: tuple[Note, ...]
    problems: tuple[str, ...] = ()  # notes that could not be placed, and why


@dataclass
class Scan:
    """Where the statements, the quoted spans and the line comments of a SQL text are."""

    text: str
    statements: list[tuple[int, int]] = field(default_factory=list)
    quoted: list[tuple[int, int]] = field(default_factory=list)  # strings, "identifiers", $bodies$, /* */
    comments: list[tuple[int, int, bool]] = field(default_factory=list)  # -- comments: start, end, between statements
    line_starts: list[int] = field(default_factory=list)

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset) - 1

    def line_text(self, line: int) -> str:
        start = self.line_starts[line]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]

    def inside_quoted(self, offset: int) -> bool:
        index = bisect.bisect_right(self.quoted, (offset, float("inf"))) - 1
        return index >= 0 and self.quoted[index][0] < offset < self.quoted[index][1]


def scan(text: str) -> Scan:
    """Split SQL into statements the way PostgreSQL's lexer sees `;`: not inside a string
    ('' and E'\\'' escapes), a quoted identifier, a dollar-quoted body or a comment."""
    result = Scan(text, line_starts=[0] + [m.end() for m in re.finditer("\n", text)])
    i, n, start = 0, len(text), None
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            result.comments.append((i, j, start is None))
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            result.quoted.append((i, j))
            i = j
            continue
        if c.isspace():
            i += 1
            continue
        if start is None:
            start = i
        if c == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
            j = i + 1
            while j < n:
                if escapes and text[j] == "\\":
                    j += 2
                elif text[j] == "'" and text.startswith("''", j):
                    j += 2
                elif text[j] == "'":
                    break
                else:
                    j += 1
            result.quoted.append((i, j + 1))
            i = j + 1
            continue
        if c == '"':
            j = i + 1
            while j < n and not (text[j] == '"' and not text.startswith('""', j)):
                j += 2 if text.startswith('""', j) else 1
            result.quoted.append((i, j + 1))
            i = j + 1
            continue
        if c == "$" and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            match = _DOLLAR.match(text, i)
            if match:
                close = text.find(match.group(0), match.end())
                j = n if close < 0 else close + len(match.group(0))
                result.quoted.append((i, j))
                i = j
                continue
        if c == ";":
            if i > start:  # `;;` leaves an empty statement: not one
                result.statements.append((start, i + 1))
            start = None
        i += 1
    if start is not None:
        result.statements.append((start, n))
    return result


def statements(text: str, sc: Scan | None = None) -> list[Statement]:
    """Every statement of a rendering with the revision and direction it belongs to,
    from Alembic's `-- Running upgrade A -> B` markers (B's; a downgrade's `B -> A`: B's)."""
    sc = sc or scan(text)
    markers = []
    for start, end, between in sc.comments:
        match = _MARKER.match(text, start, end) if between else None
        if match:
            direction, source, destination = match.groups()
            markers.append((start, destination if direction == "upgrade" else source, direction))
    preamble_direction = markers[0][2] if markers else "upgrade"
    result = []
    for start, end in sc.statements:
        index = bisect.bisect_right(markers, (start, "\uffff")) - 1
        revision, direction = (markers[index][1], markers[index][2]) if index >= 0 else (None, preamble_direction)
        first = sc.line_of(start)
        newline = text.find("\n", start, end)
        head = normalize(text[start:end if newline < 0 else newline]).rstrip(";").rstrip()
        result.append(Statement(start, end, first, sc.line_of(max(start, end - 1)), revision or None, direction, head))
    return result


# -- the structural notes ---------------------------------------------------------------

_DROP = re.compile(
    r"DROP\s+(TABLE|FUNCTION|PROCEDURE|MATERIALIZED\s+VIEW|VIEW|DOMAIN|SEQUENCE|SCHEMA|TYPE|EXTENSION)\s+"
    r"(?:IF\s+EXISTS\s+)?(.*?)\s*(?:\b(?:CASCADE|RESTRICT))?\s*;?\s*$",
    re.I | re.S,
)
_DROP_RULES = {
    "TABLE": "ban-drop-table", "FUNCTION": "ban-drop-function", "PROCEDURE": "ban-drop-function",
    "MATERIALIZED VIEW": "ban-drop-view", "VIEW": "ban-drop-view", "DOMAIN": "ban-drop-domain",
    "SEQUENCE": "ban-drop-sequence", "SCHEMA": "ban-drop-schema", "TYPE": "ban-drop-type",
    "EXTENSION": "ban-drop-extension",
}
_ALTER_DROPS = {
    "COLUMN": (re.compile(r"\bDROP\s+COLUMN\s+(?:IF\s+EXISTS\s+)?(\"(?:[^\"]|\"\")+\"|\w+)", re.I), "ban-drop-column"),
    "CONSTRAINT": (re.compile(r"\bDROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?(\"(?:[^\"]|\"\")+\"|\w+)", re.I), "ban-drop-constraint"),
}
_ROBUST_CANDIDATE = re.compile(
    r"(?:CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?!IF\s+NOT\s+EXISTS\b)(?!ON\b)\S"
    r"|CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?!IF\s+NOT\s+EXISTS\b)\S"
    r"|DROP\s+(?:TABLE|INDEX|TYPE)\s+(?:CONCURRENTLY\s+)?(?!IF\s+EXISTS\b)\S)",
    re.I,
)


def object_name(reference: str) -> str:
    """`schema."Name"(args)` → `Name`: the object's own name, unquoted."""
    reference = reference.split("(", 1)[0].strip()
    parts = re.findall(r'"((?:[^"]|"")+)"|([^."\s]+)', reference)
    quoted, plain = parts[-1] if parts else ("", reference)
    return quoted.replace('""', '"') if quoted else plain.lower()


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _downgrade_drop_notes(text: str, sc: Scan, stmt: Statement) -> list[Note]:
    body = text[stmt.start:stmt.end]
    reason = DOWNGRADE_DROP_REASON.format(revision=stmt.revision)
    match = _DROP.match(body)
    if match:
        kind = normalize(match.group(1)).upper()
        names = tuple((kind, object_name(ref)) for ref in _split_top_level(match.group(2)))
        return [Note(stmt.first_line, (_DROP_RULES[kind],), reason, "downgrade-drop", stmt, names)]
    if not re.match(r"ALTER\s+TABLE\b", body, re.I):
        return []
    notes = []
    for line in range(stmt.first_line, stmt.last_line + 1):
        line_text = sc.line_text(line)
        for kind, (pattern, rule) in _ALTER_DROPS.items():
            names = tuple((kind, object_name(m.group(1))) for m in pattern.finditer(line_text))
            if names:
                notes.append(Note(line, (rule,), reason, "downgrade-drop", stmt, names))
    return notes


def _first_transaction_notes(stmts: list[Statement]) -> list[Note]:
    """prefer-robust-stmts for the statements of a transaction that writes alembic_version
    with INSERT or DELETE, when squawk's Alembic reading is on (an UPDATE elsewhere)."""
    if not any(s.head.upper().startswith("UPDATE ALEMBIC_VERSION ") for s in stmts):
        return []
    notes: list[Note] = []
    group: list[Statement] | None = None
    for stmt in stmts:
        word = stmt.head.upper()
        if word in {"BEGIN", "START TRANSACTION"}:
            group = []
        elif word == "COMMIT" and group is not None:
            writes = {" ".join(s.head.split()[:2]).upper() for s in group if re.match(r"(INSERT INTO|DELETE FROM|UPDATE) alembic_version\b", s.head, re.I)}
            if writes and "UPDATE ALEMBIC_VERSION" not in writes:
                reason = FIRST_TRANSACTION_REASON.format(write=" / ".join(sorted(writes)))
                notes += [Note(s.first_line, ("prefer-robust-stmts",), reason, "first-transaction", s)
                          for s in group if _ROBUST_CANDIDATE.match(s.head)]
            group = None
        elif group is not None:
            group.append(stmt)
    return notes


# -- the reviewed justifications --------------------------------------------------------

def _justification_notes(sc: Scan, stmt: Statement, entries: Iterable[Justification]) -> list[Note]:
    notes = []
    for entry in entries:
        if entry.statement != stmt.head:
            continue
        if entry.at is None:
            lines = [stmt.first_line]
        else:
            lines = [line for line in range(stmt.first_line, stmt.last_line + 1) if normalize(sc.line_text(line)) == entry.at]
        notes += [Note(line, (entry.rule,), entry.reason, "justification", stmt, entry=entry) for line in lines]
    return notes


def annotate(raw: str, justifications: Iterable[Justification] = JUSTIFICATIONS) -> Annotated:
    """The rendering with an ignore comment (rules and reason) above each justified line."""
    sc = scan(raw)
    stmts = statements(raw, sc)
    by_key: dict[tuple[str | None, str], list[Justification]] = {}
    for entry in justifications:
        by_key.setdefault((entry.revision, entry.direction), []).append(entry)
    notes: list[Note] = []
    for stmt in stmts:
        notes += _justification_notes(sc, stmt, by_key.get((stmt.revision, stmt.direction), ()))
        if stmt.direction == "downgrade" and stmt.revision is not None:
            notes += _downgrade_drop_notes(raw, sc, stmt)
    notes += _first_transaction_notes(stmts)
    # A reviewed entry on the same line and rule says it better than a structural note.
    explicit = {(note.line, rule) for note in notes if note.entry is not None for rule in note.rules}
    notes = [note for note in notes if note.entry is not None or not all((note.line, rule) in explicit for rule in note.rules)]

    placed: list[Note] = []
    problems: list[str] = []
    by_line: dict[int, list[Note]] = {}
    for note in notes:
        if sc.inside_quoted(sc.line_starts[note.line]):
            problems.append(
                f"{note.statement.describe()}: cannot place `squawk-ignore {','.join(note.rules)}` above line "
                f"`{normalize(sc.line_text(note.line))}`: it is inside a string or a body, where a comment would change what runs"
            )
            continue
        placed.append(note)
        by_line.setdefault(note.line, []).append(note)

    lines = raw.split("\n")
    out = []
    for number, line in enumerate(lines):
        here = by_line.get(number)
        if here:
            rules = list(dict.fromkeys(rule for note in here for rule in note.rules))
            reasons = list(dict.fromkeys(note.reason for note in here))
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}-- squawk-ignore {', '.join(rules)} -- {'; '.join(reasons)}")
        out.append(line)
    return Annotated(raw, "\n".join(out), tuple(placed), tuple(problems))
