"""`trackschema ci`'s options, declared once (the CLI, library callers and the docs read them).

Everything is parsed and checked before a server is started: the revisions `--revisions`
names must exist in the history (with the `--versions` folders), the JUnit file's folder
must exist.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trackschema.audits import FindingKinds
from trackschema.operations.inputs import Choice, InputError, Names, Text
from trackschema.operations.options import Options, option
from trackschema.runtime.provision import VERSIONS
from trackschema.runtime.settings import ServerUrl

# The steps, in the order they run; `--skip` may leave out all but the first.
STEPS = ("upgrade", "round-trip", "revisions", "lint", "audits")
SKIPPABLE = STEPS[1:]

# Audit findings that fail the run by default: the kinds a freshly migrated schema can
# have on its own. Left out: what depends on traffic, data or statistics (unused, bloat,
# write_cost, default_partition_rows) and on how long the database has lived
# (partitions_running_out, detach_pending).
DEFAULT_FAIL_ON = (
    "duplicate", "redundant", "invalid", "unindexed_fk",
    "missing_updated_at_trigger", "duplicate_updated_at_trigger", "misconfigured_updated_at_trigger",
    "stale_tracking_function", "missing_tracking_trigger", "unused_trigger_function",
    "conversion_incomplete",
)

_REVISION = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _items(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


@dataclass(frozen=True)
class RevisionIds:
    """Revision ids, comma-separated (whether they exist is checked with the history)."""

    def parse(self, option: str, value: Any) -> tuple[str, ...]:
        ids = tuple(dict.fromkeys(_items(value)))
        bad = next((i for i in ids if not _REVISION.match(i)), None)
        if bad is not None or not ids:
            raise InputError(f"bad {option} {str(bad if bad is not None else value)[:40]!r}: give revision ids, comma-separated (see `trackschema history`)")
        return ids


@dataclass(frozen=True)
class Folders:
    """Existing folders, comma-separated; given back as absolute paths."""

    def parse(self, option: str, value: Any) -> tuple[str, ...]:
        folders = tuple(dict.fromkeys(str(Path(item).resolve()) for item in _items(value)))
        missing = next((f for f in folders if not Path(f).is_dir()), None)
        if missing is not None or not folders:
            raise InputError(f"bad {option} {str(missing or value)[:60]!r}: give existing folders of revisions, comma-separated")
        return folders


@dataclass(frozen=True)
class OutputFile:
    """A file to write, in a folder that exists (the file itself is replaced)."""

    def parse(self, option: str, value: Any) -> str:
        path = Path(str(value).strip()).expanduser()
        if not str(value).strip() or path.is_dir():
            raise InputError(f"bad {option} {str(value)[:60]!r}: give a file name (e.g. ci-report.xml)")
        if not path.resolve().parent.is_dir() or not os.access(path.resolve().parent, os.W_OK):
            raise InputError(f"bad {option} {str(value)[:60]!r}: its folder {str(path.resolve().parent)[:60]!r} does not exist or is not writable")
        return str(path.resolve())


@dataclass(frozen=True)
class CiOptions(Options):
    """`trackschema ci`: where the throwaway server comes from, which steps run, how they judge."""

    operation = "ci"
    server_url: str | None = option(ServerUrl(), None,
                                    "A PostgreSQL server where ci may create its own databases, dropped at the end (env TRACKSCHEMA_CI_SERVER_URL; default: start a throwaway server).",
                                    env="TRACKSCHEMA_CI_SERVER_URL")
    postgres: str | None = option(Choice(VERSIONS), None,
                                  "PostgreSQL major version: local binaries of that version, or the image postgres:VERSION (default: what is found).")
    image: str | None = option(Text(), None, "Container image (default postgres:VERSION with --postgres, else TRACKSCHEMA_POSTGRES_IMAGE, else postgres:15).")
    provision: str = option(Choice(("auto", "container", "local")), "auto",
                            "Where the throwaway server comes from: a testcontainer where a Docker engine answers, else local binaries (auto), or only one.",
                            env="TRACKSCHEMA_PROVISION")
    fail_on: tuple[str, ...] | frozenset[str] = option(FindingKinds(), DEFAULT_FAIL_ON, "Audit finding kinds that fail the audits step (comma-separated, or all).")
    skip: tuple[str, ...] | None = option(Names(SKIPPABLE), None, f"Steps to leave out, comma-separated ({', '.join(SKIPPABLE)}).")
    revisions: tuple[str, ...] | None = option(RevisionIds(), None,
                                               "Check only these revisions on their own, and lint only them besides the whole plan (default: every revision).")
    versions: tuple[str, ...] | None = option(Folders(), None, "Folders of extra revisions chained onto trackschema's (comma-separated).")
    junit_xml: str | None = option(OutputFile(), None, "Also write a JUnit XML report to this file.")

    def check(self, label: Callable[[str], str]) -> None:
        if self.revisions:
            known = set(known_revisions(self.extra_version_locations))
            unknown = [r for r in self.revisions if r not in known]
            if unknown:
                raise InputError(f"bad {label('revisions')} {unknown[0]!r}: no such revision (see `trackschema history`"
                                 + (", with the --versions folders)" if self.versions else ")"))

    @property
    def extra_version_locations(self) -> list[str] | None:
        return list(self.versions) if self.versions else None

    @property
    def failing_kinds(self) -> frozenset[str]:
        return FindingKinds().parse("--fail-on", self.fail_on)

    def runs(self, step: str) -> bool:
        return step not in (self.skip or ())


def script_directory(extra_version_locations: list[str] | None = None) -> Any:
    """The revision scripts (Alembic's `ScriptDirectory`), with the extra folders; no database."""
    from alembic.script import ScriptDirectory

    from trackschema.migrations.runner import alembic_config, alembic_errors
    from trackschema.runtime.settings import Settings

    settings = Settings()
    with alembic_errors(settings):
        return ScriptDirectory.from_config(alembic_config(settings, extra_version_locations=extra_version_locations))


def ordered_revisions(extra_version_locations: list[str] | None = None) -> list[Any]:
    """The revision scripts, oldest first."""
    return list(reversed(list(script_directory(extra_version_locations).walk_revisions())))


def known_revisions(extra_version_locations: list[str] | None = None) -> list[str]:
    """Every revision id of the history (oldest first), with the extra folders."""
    return [rev.revision for rev in ordered_revisions(extra_version_locations)]
