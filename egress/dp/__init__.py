"""Differential-privacy gateway: DP answers computed server-side and charged to a ledger.

A researcher who can add noise in the notebook can re-run until the noise suits them, so
noise is added here, after the query's cost has been charged to the permit's budget.

Modules, one job each (pure first, I/O last):
- `schema`   the DP view of a dataset descriptor (categories, bounds, contribution bounds)
- `spec`     query spec validation: JSON dict -> `DpQuery` (pure)
- `calibrate` OpenDP measurements for a query: scales, privacy cost (pure, OpenDP)
- `compute`  exact aggregates in DuckDB over the extract, per-person truncation
- `ledger`   the budget tables and the atomic charge
- `service`  `run_query`: validate -> charge -> compute -> noise -> audit
- `cli`      `python -m egress.dp budget PERMIT`: the operators' view of the ledger

Must not be imported by `hub` (imports point one way).
"""
