"""SPE control plane: permits, datasets, provisioning, audit, the hub and the `spe` CLI.

Must not import `egress` (imports point one way: egress may use hub's registry and audit).
"""

__version__ = "0.1.0"
