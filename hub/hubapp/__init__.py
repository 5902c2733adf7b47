"""The JupyterHub application of SPE: options, config builder, demo authenticator, audit hooks.

Loaded through `hub/jupyterhub_config.py` (`jupyterhub -f hub/jupyterhub_config.py`), the
only place besides the CLI that reads the environment. Must not import `egress`.
"""
