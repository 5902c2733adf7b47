"""SPE control plane: permits, datasets, provisioning, audit, the hub and the `spe` CLI.

Must not import `egress` (imports point one way: egress may use hub's registry and audit, and
plugs its tables, metrics and register rows in through `hub.extensions`; pyproject.toml's import
contract checks it).
"""

__version__ = "0.1.0"
