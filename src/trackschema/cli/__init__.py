"""The command line: Typer commands (commands) over the library, rendered by console (the only module that imports Rich)."""

from trackschema.cli.commands import app, main

__all__ = ["app", "main"]
