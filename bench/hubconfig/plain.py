"""Baseline for bench/spawn.py: a plain DockerSpawner on the same image, network and hub binding."""
import os

c = get_config()  # noqa: F821
home = os.environ["SPE_HOME"]
gw = os.environ["SPE_BENCH_GATEWAY"]
c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['SPE_PUBLIC_PORT']}"
c.JupyterHub.hub_bind_url = f"http://{gw}:{os.environ['SPE_HUB_PORT']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['SPE_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.pid_file = os.path.join(home, "plain-proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{home}/plain-jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = os.path.join(home, "plain-cookie-secret")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.allow_named_servers = True
c.JupyterHub.authenticator_class = "null"
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = os.environ["SPE_IMAGE"]
c.DockerSpawner.network_name = os.environ["SPE_NETWORK"]
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.prefix = "jupyter-" + os.environ["SPE_NETWORK"]  # no name clash with another run
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.start_timeout = 180  # same patience as the SPE hub (hub/hubapp/config_docker.py)
c.DockerSpawner.http_timeout = 120
c.DockerSpawner.extra_create_kwargs = {"labels": {"spe.network": os.environ["SPE_NETWORK"]}}
c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["SPE_BENCH_TOKEN"]}]
c.JupyterHub.load_roles = [{"name": "admin", "services": ["bench"]}]
