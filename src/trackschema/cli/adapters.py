"""Typer options made from an operation's declared options.

`@declared_options(SomeOptions)` gives a command one `--option-name` per field that
`SomeOptions` declares (see `trackschema.operations.options`), with the declaration's
help and default, and hands the command the parsed `options` object. An option added to
the declaration appears on the command, with the same check and default as in
`jobs run --param` and the job runner: nothing is written twice.

Values arrive as text and are parsed by the declared kind, so `--batch-time 250ms` and
`--param batch_time=250ms` are read by the same code and refused with the same message.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Optional

import typer

from trackschema.operations.inputs import Choice, Flag
from trackschema.operations.options import Options, cli_label


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
            if value >= size and value % size == 0:
                return f"{value / size:g}{unit}"
        return f"{value * 1000:g}ms"
    return str(value)


def declared_options(options_cls: type[Options], *, skip: Iterable[str] = (),
                     names: dict[str, str] | None = None,
                     pairs: dict[str, tuple[str, str]] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a Typer command that takes `options: options_cls`; `skip` leaves fields out
    (given another way, e.g. as arguments); `names` renames an option (field -> `--flag`);
    `pairs` gives a two-way `Choice` as a pair of flags (`action` -> `--archive/--drop`,
    the first flag for the first choice)."""
    skipped, renamed, paired = set(skip), dict(names or {}), dict(pairs or {})

    def label(field: str) -> str:
        if field in paired:
            return "/".join(paired[field])
        return renamed.get(field, cli_label(field))

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn, eval_str=True)
        declared = {name: f for name, f in options_cls.declared().items() if name not in skipped}
        added = []
        for name, field in declared.items():
            kind, default = field.metadata["kind"], field.default
            help_text = field.metadata.get("help", "")
            env = field.metadata.get("env")
            if name in paired:
                if not isinstance(kind, Choice) or len(kind.choices) != 2:
                    raise TypeError(f"{options_cls.__name__}.{name}: only a choice of two can be a pair of flags")
                shown = f" (default: {paired[name][kind.choices.index(default)]})" if default is not None else ""
                annotation = Annotated[Optional[bool], typer.Option("/".join(paired[name]), help=help_text + shown, show_default=False)]
                added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
            elif isinstance(kind, Flag):
                if default:
                    raise TypeError(f"{options_cls.__name__}.{name}: a flag that defaults to true cannot be given as --{name}")
                annotation: Any = Annotated[bool, typer.Option(label(name), help=help_text)]
                added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=annotation))
            else:
                # in parentheses: Typer's Rich help would read "[default: 5s]" as markup and drop it
                shown = f" (default: {_shown(default)}" + (f"; env {env})" if env else ")") if default is not None else ""
                annotation = Annotated[Optional[str], typer.Option(label(name), help=help_text + shown, show_default=False)]
                added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
        kept = [p for p in own.parameters.values() if p.name != "options"]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in declared}
            for name, value in given.items():
                if name in paired and value is not None:
                    given[name] = declared[name].metadata["kind"].choices[0 if value else 1]
            values = {k: v for k, v in given.items() if v is not None and v is not False}
            options = options_cls.from_params(values, label=label)
            return fn(*args, options=options, **kwargs)

        parameters = sorted(kept + added, key=lambda p: p.kind)
        command.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": own.return_annotation}
        del command.__wrapped__  # Typer must read the new signature, not follow to `fn`
        return command

    return decorate
