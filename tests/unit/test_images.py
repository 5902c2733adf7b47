"""Pure parts of the image build: input hash, build args, CA bundle discovery, apt mirrors."""

import importlib.util
from pathlib import Path

import pytest

from hub.exceptions import Failure
from tools.images import (
    REPO_ROOT,
    BuildOptions,
    find_extra_ca_bundle,
    HUB,
    iter_context_files,
    make_build_args,
    make_input_hash,
    options_from_environ,
)

_spec = importlib.util.spec_from_file_location("apt_sources", REPO_ROOT / "images" / "base" / "apt_sources.py")
apt_sources = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(apt_sources)

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
FILES = {"images/workspace/Dockerfile": b"FROM x\n", "egress/client/spe/__init__.py": b"v = 1\n"}
ARGS = {"BASE_IMAGE": "spe/base:bookworm", "JUPYTERHUB_VERSION": "6.1.1"}


def test_input_hash_is_stable_and_order_free():
    first = make_input_hash(FILES, ARGS, "sha256:aa")
    again = make_input_hash(dict(reversed(list(FILES.items()))), dict(reversed(list(ARGS.items()))), "sha256:aa")
    assert first == again
    assert len(first) == 16 and int(first, 16) >= 0


@pytest.mark.parametrize(
    "files, args, base",
    [
        ({**FILES, "images/workspace/Dockerfile": b"FROM y\n"}, ARGS, "sha256:aa"),  # content
        ({**FILES, "images/workspace/extra.txt": b""}, ARGS, "sha256:aa"),  # new empty file
        ({"images/workspace/Dockerfile2": b"FROM x\n", "egress/client/spe/__init__.py": b"v = 1\n"}, ARGS, "sha256:aa"),
        (FILES, {**ARGS, "JUPYTERHUB_VERSION": "6.1.2"}, "sha256:aa"),  # build arg
        (FILES, ARGS, "sha256:bb"),  # base image rebuilt
    ],
)
def test_input_hash_changes_with_every_input(files, args, base):
    assert make_input_hash(files, args, base) != make_input_hash(FILES, ARGS, "sha256:aa")


def test_build_args_name_the_staged_ca_only_when_there_is_one(tmp_path):
    assert "EXTRA_CA_BUNDLE" not in make_build_args(BuildOptions(), "spe/base:bookworm")
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    args = make_build_args(BuildOptions(extra_ca_bundle=ca, pip_index_url="https://mirror/simple"), "b:1")
    assert args == {
        "BASE_IMAGE": "b:1",
        "JUPYTERHUB_VERSION": BuildOptions().jupyterhub_version,
        "EXTRA_CA_BUNDLE": "extra-ca.pem",
        "PIP_INDEX_URL": "https://mirror/simple",
    }


def test_ca_bundle_explicit_wins_and_none_disables(tmp_path):
    ca = tmp_path / "proxy.pem"
    ca.write_text(PEM)
    other = tmp_path / "other.pem"
    other.write_text(PEM)
    assert find_extra_ca_bundle({"SPE_EXTRA_CA_BUNDLE": str(ca), "PIP_CERT": str(other)}, ()) == ca
    assert find_extra_ca_bundle({"SPE_EXTRA_CA_BUNDLE": "none", "PIP_CERT": str(other)}, ()) is None
    with pytest.raises(Failure, match="no such file"):
        find_extra_ca_bundle({"SPE_EXTRA_CA_BUNDLE": str(tmp_path / "missing.pem")}, ())


def test_ca_bundle_follows_the_hosts_pip_settings(tmp_path):
    ca = tmp_path / "pip.pem"
    ca.write_text(PEM)
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\ncert = {ca}\n")
    assert find_extra_ca_bundle({}, (str(conf),)) == ca
    assert find_extra_ca_bundle({"PIP_CERT": str(tmp_path / "gone.pem")}, (str(conf),)) == ca
    assert find_extra_ca_bundle({}, (str(tmp_path / "absent.conf"),)) is None


def test_options_ignore_file_indexes_a_container_cannot_reach():
    options = options_from_environ(
        {"PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://extra/simple", "SPE_EXTRA_CA_BUNDLE": "none"}
    )
    assert options.pip_extra_index_url == "https://extra/simple"
    assert options.extra_ca_bundle is None


def test_context_holds_the_dockerfile_config_and_client_but_no_debris(tmp_path):
    names = {name for name, _ in iter_context_files(REPO_ROOT)}
    assert {
        "images/workspace/Dockerfile",
        "images/workspace/jupyter_server_config.py",
        "images/workspace/spe_hardening.py",
        "images/workspace/page_config.json",
        "egress/client/pyproject.toml",
    } <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with pytest.raises(Failure, match="missing"):
        list(iter_context_files(tmp_path))


def test_hub_context_holds_the_package_and_its_dockerfile_only():
    names = {name for name, _ in iter_context_files(REPO_ROOT, HUB)}
    assert {"images/hub/Dockerfile", "pyproject.toml", "README.md", "hub/cli/__init__.py",
            "egress/app.py", "hub/jupyterhub_config.py"} <= names
    # nothing outside the package: tests, benchmarks and the workspace image stay out
    assert not [n for n in names if n.split("/")[0] in ("tests", "bench", "docs", "helm")
                or n.startswith("images/workspace")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_apt_sources_reads_deb822_and_one_line_files(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert apt_sources.find_mirrors("bookworm", tmp_path) == (
        "http://mirror.example/debian",
        "http://sec.example/debian-security",
    )


def test_apt_sources_defaults_without_any_source(tmp_path):
    assert apt_sources.find_mirrors("bookworm", tmp_path) == (
        "http://deb.debian.org/debian",
        "http://deb.debian.org/debian-security",
    )


def test_page_config_disables_every_download_command():
    import json

    page = json.loads((REPO_ROOT / "images" / "workspace" / "page_config.json").read_text())
    needed = {
        "@jupyterlab/docmanager-extension:download",
        "@jupyterlab/filebrowser-extension:download",
        "@jupyterlab/notebook-extension:export",
    }
    assert needed <= {k for k, v in page["disabledExtensions"].items() if v}
    assert needed <= {k for k, v in page["lockedExtensions"].items() if v}


def test_build_base_script_is_executable():
    assert Path(REPO_ROOT / "images" / "base" / "build-base.sh").stat().st_mode & 0o111


def test_workspace_tag_picks_the_hash_tag():
    from tools.images import workspace_tag

    images = {"spe/base:bookworm": "sha256:1", "spe/workspace:0123abcd": "sha256:2", "spe/workspace:latest": "sha256:2"}
    assert workspace_tag(images) == "spe/workspace:0123abcd"
    with pytest.raises(Failure, match="expected one"):
        workspace_tag({"spe/workspace:latest": "sha256:2"})
