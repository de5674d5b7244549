"""Runtime: connections (db), settings, local PostgreSQL provisioning (provision, sandbox) and scratch databases (scratch)."""
