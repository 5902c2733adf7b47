"""The inflow airlock: import requests for files and packages, reviewed before they reach a workspace.

    researcher (egress pages / API, outside the workspace)
        ── file + justification ─────────┐   checked (name, size, type by its bytes), hashed,
        ── package NAME==VERSION ────────┤   the wheel fetched on the operator side; stored
                                         ▼
                                     submitted ──approve (independent checker)──► approved ──revoke──► revoked
                                         ├──reject (checker)──► rejected               │
                                         └──withdraw (author)─► withdrawn              ▼
                                                          file: /imports/<name> in the permit's workspaces
                                                          package: the permit's index of the package mirror

Modules, one job each: `workflow` (pure: states, table, guards), `policy` (pure: what an upload
or a package request must be, what a checker is shown), `tables` (the rows), `service` (the
only code that changes import state, each transition with its audit event in one transaction;
publishing through `hub.staging` and `hub.mirror.store`). Must not import the web layer.
"""
