"""JSONB → column promotions: declarations, dual-write revisions, backfill, progress, rejects.

- `declarations`: the promotions, declared once.
- `expressions`: SQL fragments built from a declaration (has key, promoted value, ...).
- `released_2026_11`: FROZEN copy of the declarations and operations revisions 0020–0023 use.
- `backfill`: the resumable, adaptive batch engine behind `trackschema backfill run`.
- `progress`: NULL rates and rejects (`backfill progress`, `backfill rejects`).
- `stages`: each promotion's stage for `trackschema status`.
"""
