"""The supervisor's programs and config (hub.hubapp.supervise) and the backup manifest checks
(hub.backup.manifest): pure builders, checked without starting anything."""

from __future__ import annotations

import configparser
import json
import shlex
from pathlib import Path

import pytest

from hub.backup.manifest import Entry, check_entries, check_relpath, make_manifest, parse_manifest
from hub.exceptions import InvalidInput
from hub.hubapp.supervise import externalize, hub_program, proxy_program, render_config

SERVICES = [
    {"name": "idle-culler", "command": ["py", "-m", "jupyterhub_idle_culler"]},
    {"name": "egress", "url": "http://172.18.0.1:8100", "command": ["py", "-m", "egress.app"], "cwd": "/repo",
     "environment": {"SPE_HOME": "/srv/spe"}, "oauth_no_confirm": True, "display": True},
]
TOKENS = {"idle-culler": "t1", "egress": "t2"}


def test_externalize_gives_the_hub_tokens_and_the_programs_the_environment_jupyterhub_would():
    hub_services, programs = externalize(SERVICES, TOKENS, "http://172.18.0.1:8081/hub/api", "/repo")
    assert [s["api_token"] for s in hub_services] == ["t1", "t2"]
    assert all("command" not in s and "environment" not in s for s in hub_services)
    assert hub_services[1]["url"] == "http://172.18.0.1:8100" and hub_services[1]["oauth_no_confirm"]
    egress = programs[1]
    assert egress.command == ("py", "-m", "egress.app")
    assert egress.environment["SPE_HOME"] == "/srv/spe"
    assert egress.environment["JUPYTERHUB_API_TOKEN"] == "t2"
    assert egress.environment["JUPYTERHUB_SERVICE_PREFIX"] == "/services/egress/"
    assert egress.environment["JUPYTERHUB_CLIENT_ID"] == "service-egress"
    assert egress.environment["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/services/egress/oauth_callback"
    assert "JUPYTERHUB_SERVICE_URL" not in programs[0].environment  # the culler listens nowhere


def test_a_service_without_a_token_is_refused():
    with pytest.raises(InvalidInput, match="no API token for service 'egress'"):
        externalize(SERVICES, {"idle-culler": "t1"}, "http://h/hub/api", "/repo")


def test_config_parses_and_restarts_every_program(tmp_path):
    _, programs = externalize(SERVICES, TOKENS, "http://h/hub/api", "/repo")
    programs += [proxy_program("/usr/bin/configurable-http-proxy", "127.0.0.1", 8000, 8001, "http://172.18.0.1:8081",
                               "ptok", str(tmp_path)),
                 hub_program("/venv/bin/python", "/repo/hub/jupyterhub_config.py", {"SPE_SUPERVISED": "1"}, str(tmp_path))]
    text = render_config(programs, tmp_path)
    ini = configparser.RawConfigParser()
    ini.read_string(text)
    names = [s.split(":", 1)[1] for s in ini.sections() if s.startswith("program:")]
    assert names == ["proxy", "hub", "egress", "idle-culler"]  # by priority: the proxy first, the hub next
    for name in names:
        section = ini[f"program:{name}"]
        assert section["autorestart"] == "true" and section["stopasgroup"] == "true"
    proxy = shlex.split(ini["program:proxy"]["command"])
    assert proxy[proxy.index("--default-target") + 1] == "http://172.18.0.1:8081"
    assert proxy[proxy.index("--api-ip") + 1] == "127.0.0.1"
    assert 'CONFIGPROXY_AUTH_TOKEN="ptok"' in ini["program:proxy"]["environment"]
    assert ini["unix_http_server"]["chmod"] == "0700"


def test_percent_is_escaped_and_quotes_are_refused(tmp_path):
    _, programs = externalize([{"name": "x", "command": ["echo", "50%"], "environment": {"A": "1%"}}],
                              {"x": "t"}, "http://h/hub/api", "/repo")
    text = render_config(programs, tmp_path)
    assert "50%%" in text and 'A="1%%"' in text
    _, bad = externalize([{"name": "x", "command": ["echo"], "environment": {"A": 'say "hi"'}}],
                         {"x": "t"}, "http://h/hub/api", "/repo")
    with pytest.raises(InvalidInput, match="quote"):
        render_config(bad, tmp_path)


ENTRIES = [Entry("data/registry.db", 10, "a" * 64), Entry("data/extracts/P/1/person.parquet", 5, "b" * 64)]


@pytest.mark.parametrize("found, problem", [
    ({"data/registry.db": (10, "a" * 64), "data/extracts/P/1/person.parquet": (5, "b" * 64)}, None),
    ({"data/registry.db": (10, "a" * 64)}, "data/extracts/P/1/person.parquet: missing"),
    ({"data/registry.db": (9, "a" * 64), "data/extracts/P/1/person.parquet": (5, "b" * 64)},
     "data/registry.db: 9 bytes, the manifest says 10 (truncated or altered)"),
    ({"data/registry.db": (10, "c" * 64), "data/extracts/P/1/person.parquet": (5, "b" * 64)},
     "data/registry.db: SHA-256 differs from the manifest (altered)"),
    ({"data/registry.db": (10, "a" * 64), "data/extracts/P/1/person.parquet": (5, "b" * 64), "data/x": (1, "d")},
     "data/x: not in the manifest"),
])
def test_check_entries_names_the_first_bad_entry(found, problem):
    assert check_entries(ENTRIES, found) == problem


@pytest.mark.parametrize("path", ["/etc/passwd", "data/../../etc/passwd", "keys/x", "data", "other/x"])
def test_manifest_paths_stay_inside_the_backup(path):
    with pytest.raises(ValueError, match="outside"):
        check_relpath(path)


def test_manifest_round_trip_and_refusals():
    doc = make_manifest(ENTRIES, created_at="2026-01-01T00:00:00+00:00", registry="sqlite", spe_version="0.1.0")
    _, entries = parse_manifest(json.dumps(doc))
    assert sorted(entries, key=lambda e: e.path) == sorted(ENTRIES, key=lambda e: e.path)
    with pytest.raises(ValueError, match="does not list the registry"):
        parse_manifest(json.dumps({**doc, "files": doc["files"][:1]}))
    with pytest.raises(ValueError, match="not an SPE backup"):
        parse_manifest(json.dumps({**doc, "format": "tar"}))
    with pytest.raises(ValueError, match="twice"):
        parse_manifest(json.dumps({**doc, "files": doc["files"] + doc["files"][:1]}))


def test_supervised_hub_starts_neither_proxy_nor_services_and_keeps_workspaces(tmp_path):
    from traitlets.config import Config

    from hub.hubapp.config_docker import configure_docker
    from hub.hubapp.options import settings_from
    from hub.settings import Settings

    settings = Settings(home=tmp_path, db_url=f"sqlite:///{tmp_path / 'registry.db'}", actor="tester")
    env = {"SPE_SUPERVISED": "1", "SPE_RECORDER_PORT": "8765", "SPE_FRONTOFFICE_PORT": "8766",
           "SPE_CITIZENS_PORT": "8767"}
    spe = settings_from(env)
    names = ["idle-culler", "spe-lifecycle", "session-recorder", "package-mirror", "frontoffice", "citizens", "egress"]
    c = Config()
    configure_docker(c, spe, settings, "172.18.0.1", True, {n: f"tok-{n}" for n in names})
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.JupyterHub.proxy_class == "hub.hubapp.proxy.SupervisedProxy"
    assert c.JupyterHub.cleanup_servers is False  # a hub restart keeps every workspace
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert set(services) == set(names)
    assert all("command" not in s and s["api_token"] == f"tok-{n}" for n, s in services.items())
    assert services["frontoffice"]["url"] == "http://127.0.0.1:8766"
    assert services["citizens"]["url"] == "http://127.0.0.1:8767"  # where the supervisor's program listens
    with pytest.raises(InvalidInput, match="no API token"):
        configure_docker(Config(), settings_from(env), settings, "172.18.0.1", True, {})
    with pytest.raises(ValueError, match="recorder_port, frontoffice_port and citizens_port must be set"):
        configure_docker(Config(), settings_from({"SPE_SUPERVISED": "1"}), settings, "172.18.0.1", True, {})


def test_loopback_ports_are_chosen_once_and_kept_across_starts(tmp_path):
    from hub.hubapp.options import settings_from
    from hub.hubapp.supervisor_run import LOOPBACK_SERVICES, ensure_ports
    first = ensure_ports(tmp_path, settings_from({}))
    assert set(first) == set(LOOPBACK_SERVICES) and len(set(first.values())) == len(LOOPBACK_SERVICES)
    assert ensure_ports(tmp_path, settings_from({})) == first  # the hub restarted: same ports
    configured = ensure_ports(tmp_path, settings_from({"SPE_CITIZENS_PORT": "18767"}))
    assert configured["citizens"] == 18767 and configured["recorder"] == first["recorder"]
