"""The reviewed package mirror: PEP 503 indexes of operator-approved wheels for workspaces that
have no network.

    operator: spe mirror add NAME==VERSION --permit P   ┐  the operator side downloads the wheel
    checker: approves a package import request of P      ┘  (download.py), never the workspace
          │ record (registry + audit, one transaction), then place the file (store.py)
          ▼
    <home>/mirror/shared/*.whl            every permit's index
    <home>/mirror/<token of P>/*.whl      permit P's index only
          │ pypiserver, one process, one WSGI app per index (serve.py)
          ▼
    http://<gateway>:<mirror port>/<token of P>/simple/   PIP_INDEX_URL of P's workspaces

Each permit's index lives under an unguessable token (`mirror_indexes`): a workspace is given
only its own permit's URL, so it can list and fetch only what was approved for its permit plus
the shared index. Modules, one job each: `wheels` (pure: requirement and wheel-name rules, wheel
metadata), `download` (the one door to `pip download`), `tables` and `store` (the registry's
record and the files on disk), `serve` (the server process). Must not import `egress`.
"""
