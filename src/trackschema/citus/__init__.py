"""Citus: where each table of the history lives on a Citus cluster (`layout`) and the one
operation that applies or undoes that declaration (`distribute`), used by revision
0100_citus_distribution. docs/citus.md says why each table is where it is."""
