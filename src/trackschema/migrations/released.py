"""The manifest of released files: revisions, versioned SQL and frozen modules never edited again.

`alembic/released.sha256` lists, in `sha256sum` format (paths relative to the project
root, so `sha256sum -c alembic/released.sha256` works too), every file whose content is
part of a released revision. `check()` reports a listed file that changed or is gone;
tests/migrations/test_released_history.py runs it. Files not listed (revisions still in review) are
not checked.

When revisions are released, list them:

    .venv/bin/python -m trackschema.migrations.released --add alembic/versions/0060_*.py sql/functions/x.v1.sql
    .venv/bin/python -m trackschema.migrations.released            # check; exit 1 when a file changed

`--add` never rewrites the hash of a listed file: a released file that changed is the
mistake this manifest exists to catch.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from trackschema.errors import TrackschemaError
from trackschema.runtime.settings import project_root

MANIFEST = "alembic/released.sha256"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class ManifestError(TrackschemaError):
    """A malformed manifest, or a file that cannot be listed."""


@dataclass(frozen=True)
class Change:
    """A listed file whose content no longer matches the manifest (or that is gone)."""

    path: str
    expected: str
    actual: str | None  # None: the file is missing

    @property
    def message(self) -> str:
        what = "is missing" if self.actual is None else "changed"
        return f"released file {self.path} {what}: add a new revision / a new .vN.sql file instead"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(root: Path | None = None) -> dict[str, str]:
    """Listed path → SHA-256, in file order (empty when there is no manifest yet)."""
    manifest = (root or project_root()) / MANIFEST
    if not manifest.is_file():
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise ManifestError(f"{MANIFEST} line {number} is not `<sha256>  <path>`: fix the line (see `sha256sum --help`)")
        entries[match.group(2)] = match.group(1)
    return entries


def check(root: Path | None = None) -> list[Change]:
    """Every listed file that is missing or whose content differs from its recorded hash."""
    root = root or project_root()
    changes = []
    for path, expected in read_manifest(root).items():
        file = root / path
        actual = digest(file) if file.is_file() else None
        if actual != expected:
            changes.append(Change(path, expected, actual))
    return changes


def add(paths: list[str | Path], root: Path | None = None) -> list[str]:
    """List `paths` (relative to the current directory, or absolute) as released.

    Returns the newly listed paths. A path already listed with the same content is left
    alone; one listed with a different content is refused, as is anything that is not a
    file inside the project. The manifest stays sorted by path.
    """
    root = (root or project_root()).resolve()
    entries = read_manifest(root)
    added: list[str] = []
    for given in paths:
        file = Path(given).resolve()
        if not file.is_file():
            raise ManifestError(f"{given}: no such file: list files that exist (revisions, sql/**/*.vN.sql, frozen modules)")
        try:
            relative = file.relative_to(root).as_posix()
        except ValueError:
            raise ManifestError(f"{given} is outside the project {root}: list files of this project only") from None
        sha = digest(file)
        if relative in entries:
            if entries[relative] != sha:
                raise ManifestError(Change(relative, entries[relative], sha).message)
            continue
        entries[relative] = sha
        added.append(relative)
    if added:
        manifest = root / MANIFEST
        text = "".join(f"{sha}  {path}\n" for path, sha in sorted(entries.items()))
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, manifest)
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trackschema.migrations.released", description=__doc__.splitlines()[0])
    parser.add_argument("--add", nargs="+", metavar="FILE", help="list these files as released")
    parser.add_argument("--root", type=Path, help="project root (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        if args.add:
            for path in add(args.add, args.root):
                print(f"listed {path}")
            return 0
        changes = check(args.root)
    except TrackschemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for change in changes:
        print(change.message, file=sys.stderr)
    if not changes:
        print(f"{len(read_manifest(args.root))} released files unchanged")
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main())
