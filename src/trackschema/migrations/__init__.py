"""Migrations: the Alembic runner (runner), helpers used inside revisions (ops), the released-files manifest (released)."""
