"""`python -m trackschema` runs the CLI."""

from trackschema.cli.commands import main

main()
