"""The one door to DuckDB and the stored arrays read through it."""
