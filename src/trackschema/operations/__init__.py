"""The operations layer: what each operation takes, declared once.

`inputs` holds the kinds of input (durations with units, bounded counts, days, names,
choices, flags), each with its parsing and limits; `options` the `Options` base class an
operation declares its typed options with. The CLI, `jobs run --param` and the job
runner parse through the same declaration, so an option added once has the same default
and the same check everywhere, and every input is checked before the database is touched.
"""
