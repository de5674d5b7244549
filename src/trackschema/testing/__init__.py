"""Testing support for applications that use trackschema's schema, and for trackschema itself.

`trackschema.testing.plugin` is a pytest plugin, registered through the `pytest11` entry
point: installing trackschema gives a test suite the fixtures `trackschema_db`,
`trackschema_migrator`, `trackschema_template(s)` and `trackschema_server`, with nothing
to import. `trackschema.testing.databases` is the library behind them (no pytest in it).
"""
