"""Benchmark overlay: the real SPE hub config plus an admin service token for the benchmark driver."""
import os

load_subconfig(os.path.join(os.environ["SPE_REPO"], "hub", "jupyterhub_config.py"))  # noqa: F821
c = get_config()  # noqa: F821
c.JupyterHub.services.append({"name": "bench", "api_token": os.environ["SPE_BENCH_TOKEN"]})
c.JupyterHub.load_roles.append({"name": "admin", "services": ["bench"]})
