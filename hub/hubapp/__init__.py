"""The JupyterHub application of SPE: settings (traitlets), one configuration for both backends
plus each backend's additions, demo authenticator, audit hooks.

Loaded through `hub/jupyterhub_config.py` on one host and the chart's `jupyterhub_config.py` on
Kubernetes, the only places besides the CLI that read the environment. Must not import `egress`.
"""
