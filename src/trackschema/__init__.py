"""trackschema: PostgreSQL migrations and schema management for an event-tracking schema."""

__version__ = "0.1.0"
