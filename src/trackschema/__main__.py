"""`python -m trackschema` runs the CLI."""

from trackschema.cli import main

main()
