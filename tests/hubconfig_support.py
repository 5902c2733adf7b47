"""Test support for the hub configuration: compare what two traitlets Configs set, and check that
the single host's and the chart's hub agree on everything both backends share. Shared by
tests/unit/test_hub_config.py and tests/helm."""

from __future__ import annotations

from traitlets.config import Config

from hub.hubapp.config import configure_hub
from hub.hubapp.options import SpeHub
from hub.settings import Settings

# how a service runs differs per backend (a command here, a URL and token there); what it is does not
HOW = {"command", "cwd", "environment", "api_token", "url"}
# set by configure_hub and independent of the backend's services and SpeHub defaults
SAME_ON_BOTH = [("JupyterHub", "custom_scopes"), ("Spawner", "server_token_scopes"),
                ("JupyterHub", "allow_named_servers"), ("JupyterHub", "named_server_limit_per_user"),
                ("JupyterHub", "redirect_to_server"), ("JupyterHub", "template_paths"),
                ("JupyterHub", "template_vars"), ("JupyterHub", "tornado_settings"),
                ("Authenticator", "post_auth_hook")]


def plain(value):
    """Config values made comparable: callables by qualified name, containers element-wise."""
    if callable(value):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def services(c: Config) -> dict:
    return {s["name"]: s for s in c.JupyterHub.services}


def assert_keeps_shared(c: Config, spe: SpeHub, settings: Settings) -> None:
    """`c` carries every value configure_hub sets for these settings and `c`'s own services."""
    shared = Config()
    configure_hub(shared, spe, settings, c.JupyterHub.services)
    for section, traits in shared.items():
        for trait, value in traits.items():
            assert plain(c[section][trait]) == plain(value), (section, trait)


def assert_backends_agree(docker: Config, kube: Config) -> None:
    """Same scopes, named servers, home page, audit hooks; the chart's roles are the single
    host's; every service both run is registered alike (only how it runs differs)."""
    for section, trait in SAME_ON_BOTH:
        assert plain(docker[section][trait]) == plain(kube[section][trait]), (section, trait)
    kube_roles = {r["name"]: r for r in kube.JupyterHub.load_roles}
    assert kube_roles.items() <= {r["name"]: r for r in docker.JupyterHub.load_roles}.items()
    both = services(docker).keys() & services(kube).keys()
    assert "egress" in both
    for name in both:
        d, k = services(docker)[name], services(kube)[name]
        assert {x: v for x, v in d.items() if x not in HOW} == {x: v for x, v in k.items() if x not in HOW}, name
