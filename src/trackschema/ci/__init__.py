"""`trackschema ci`: the whole migration check of a CI job in one command.

A throwaway server (`run.start_server`), then the steps (`steps`): upgrade base→head, the
round trip head→base→head with identical catalogs, each revision's up/down/up, squawk over
the `--sql` plan, the audits with `--fail-on`. `run.run(options)` returns a `CiResult`;
`junit.write` gives CI systems their XML. Options: `options.CiOptions`.
"""
