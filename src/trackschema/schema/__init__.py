"""Schema drift: catalog snapshots, their comparison, and `trackschema check`.

`catalog` reads a normalized, hashable description of a database's schema from
pg_catalog and compares two of them; `check` compares a live database with a scratch
database built to the same revision.
"""
