"""Provisioning: build a permit's minimised extract (opt-outs, cohort, projection,
generalisation, keyed pseudonyms) with DuckDB, atomically, with a manifest."""
