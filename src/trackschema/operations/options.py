"""Typed options objects, declared once per operation.

An operation's options are a frozen dataclass deriving from `Options`; each field is
declared with `option(kind, default, help)`, where `kind` is one of the input kinds of
`trackschema.operations.inputs`. The same declaration serves every caller:

- `Options.from_params(params)` reads `--param key=value` pairs of `jobs run`, values a
  scheduler recorded, or a CLI command's options (`label=cli_label` names them
  `--key-name`). An unknown key is refused with the list of known ones, every value is
  parsed and range-checked, then `check()` looks at the values together;
- `Options()` with keyword arguments builds one from code, with the same defaults;
- `describe()` lists the parameters for `jobs list` and the docs.

An option may name an environment variable (`option(..., env="TRACKSCHEMA_LOCK_WAIT")`):
when the caller does not give it, the variable's value is parsed by the same kind (and a
bad one refused, naming the variable), else the declared default applies.

Nothing here touches a database: parse first, connect after.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from trackschema.operations.inputs import InputError

Self = TypeVar("Self", bound="Options")


def param_label(name: str) -> str:
    """How `jobs run --param` names an option in a message."""
    return f"--param {name}"


def cli_label(name: str) -> str:
    """How a CLI command names an option in a message."""
    return f"--{name.replace('_', '-')}"


def parse_pairs(pairs: list[str] | None, option_name: str = "--param") -> dict[str, str]:
    """`KEY=VALUE` strings (`--param` of `jobs run`) as a dict; `-` in a key reads as `_`."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"bad {option_name} {pair[:40]!r}: write it as KEY=VALUE")
        params[key.strip().replace("-", "_")] = value
    return params


def option(kind: Any, default: Any = None, help: str = "", env: str | None = None) -> Any:  # noqa: A002 - the word users read
    """A declared option: its input kind, default, one-line help and, optionally, the
    environment variable that sets it when the caller does not."""
    return dataclasses.field(default=default, metadata={"kind": kind, "help": help, "env": env})


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of every operation's options (see the module docstring)."""

    operation: ClassVar[str] = "this operation"

    def __post_init__(self) -> None:
        """Options built from code pass the same checks as parsed ones: every value that is
        not None goes through its declared kind (named as a CLI option in a refusal)."""
        for name, f in self.declared().items():
            value = getattr(self, name)
            if value is not None:
                f.metadata["kind"].parse(cli_label(name), value)

    @classmethod
    def declared(cls) -> dict[str, dataclasses.Field[Any]]:
        return {f.name: f for f in dataclasses.fields(cls) if "kind" in f.metadata}

    @classmethod
    def from_params(cls: type[Self], params: Mapping[str, Any] | None, *,
                    label: Callable[[str], str] = param_label) -> Self:
        """Parse `params` (None and "" mean "the default"); raise `InputError` on the first
        unknown key or bad value, naming it as `label(key)` shows it."""
        declared = cls.declared()
        params = dict(params or {})
        unknown = sorted(k for k in params if k not in declared)
        if unknown:
            known = ", ".join(declared) or "none"
            raise InputError(f"unknown parameter {label(unknown[0])} for {cls.operation}: its parameters are {known}")
        values = {
            key: declared[key].metadata["kind"].parse(label(key), value)
            for key, value in params.items()
            if value is not None and value != ""
        }
        for key, f in declared.items():
            env = f.metadata.get("env")
            if key not in values and env and os.environ.get(env):
                values[key] = f.metadata["kind"].parse(env, os.environ[env])
        made = cls(**values)
        made.check(label)
        return made

    def check(self, label: Callable[[str], str]) -> None:
        """Checks across fields (e.g. two options that exclude each other); none by default."""

    def values(self) -> dict[str, Any]:
        """The declared values by field name, as keyword arguments for the operation's verb."""
        return {name: getattr(self, name) for name in self.declared()}

    def to_params(self) -> dict[str, Any]:
        """The values as JSON-friendly data (what `job_runs.params` records)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any]]:
        """(name, help, default) of every declared option."""
        return [(f.name, f.metadata.get("help", ""), f.default) for f in cls.declared().values()]


@dataclasses.dataclass(frozen=True)
class NoOptions(Options):
    """An operation that takes no parameter."""
