"""The host's own pip settings that SPE reuses when it fetches from a package index: the CA
bundle pip trusts and the index it uses. Read from an environment mapping and pip's
configuration files handed in by an entry point (never `os.environ` here).

Two users: `tools/images` (the image build reaches PyPI as the host's pip does) and
`hub.mirror.download` (the operator side downloads wheels for the reviewed package mirror).
Standard library plus `hub.exceptions`.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

from hub.exceptions import Failure

# pip configuration files consulted for `cert` / `index-url`, in pip's own order (global first).
PIP_CONFIG_FILES = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.config/pip/pip.conf", "~/.pip/pip.conf")
PYPI_SIMPLE = "https://pypi.org/simple"


def read_pip_config(paths: tuple[str, ...], key: str) -> str:
    """Value of `[global] key` in the last pip config file setting it (pip's precedence)."""
    value = ""
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except configparser.Error:
            continue
        for section in ("global", "install"):
            if parser.has_option(section, key):
                value = parser.get(section, key)
    return value.strip()


def find_extra_ca_bundle(environ: Mapping[str, str], pip_config_files=PIP_CONFIG_FILES) -> Path | None:
    """The CA bundle the host's own pip trusts, so that SPE reaches the index the same way.

    SPE_EXTRA_CA_BUNDLE names it explicitly ('' or 'none' = no extra CA). Otherwise the
    first existing file of PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE and pip's `cert`
    setting. A host without any of these gets none.
    """
    explicit = environ.get("SPE_EXTRA_CA_BUNDLE")
    if explicit is not None:
        if explicit.strip().lower() in ("", "none"):
            return None
        path = Path(explicit)
        if not path.is_file():
            raise Failure(f"SPE_EXTRA_CA_BUNDLE={explicit}: no such file")
        return path
    candidates = [environ.get(name, "") for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    candidates.append(read_pip_config(pip_config_files, "cert"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def find_index_url(environ: Mapping[str, str], pip_config_files=PIP_CONFIG_FILES) -> str:
    """The one index the package mirror downloads from: SPE_MIRROR_INDEX_URL, else the host pip's
    index (PIP_INDEX_URL, pip's `index-url`), else PyPI. Extra indexes are never used: every
    wheel in the mirror comes from the one named source that its audit event records."""
    for candidate in (environ.get("SPE_MIRROR_INDEX_URL", ""), environ.get("PIP_INDEX_URL", ""),
                      read_pip_config(pip_config_files, "index-url")):
        first = candidate.split()[0] if candidate.split() else ""
        if first:
            return first
    return PYPI_SIMPLE
