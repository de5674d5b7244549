"""Partitions: monthly range partitions (monthly: list, ensure, retire, the maintenance job) and row archiving of unpartitioned tracking tables (archive)."""
