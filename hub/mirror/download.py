"""The one door to `pip download`: the operator side fetches exactly one wheel of one release
for the workspaces' Python and platform, from one index, never from a workspace.

    pip --isolated download --only-binary=:all: --no-deps NAME==VERSION
        --index-url <index> [--cert <CA bundle>] --python-version 3.11 --implementation cp
        --abi cp311 --platform manylinux_2_36_x86_64 ... -d <temporary directory>

`--isolated` keeps the host's pip configuration and environment out (a constraints file or an
extra index of the host would change what is fetched); the index and the CA bundle are passed
explicitly instead, from `hub.pipconfig` at the entry point (like the image build). Binary only
(`--only-binary=:all:`): an sdist would run its build code on the operator's host. No
dependencies (`--no-deps`): each release is reviewed on its own. The wheel is read back and
checked (`hub.mirror.wheels.read_wheel`) and its bytes returned; the temporary directory is
always removed. A release the index does not have is a Refused naming pip's reason.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hub.exceptions import Failure, Refused
from hub.mirror.wheels import Requirement, WheelInfo, read_wheel, workspace_platforms
from hub.pipconfig import PYPI_SIMPLE

log = logging.getLogger("spe.mirror")

DEFAULT_MAX_WHEEL_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class DownloadSettings:
    """Where wheels come from and for which interpreter (the workspace image's)."""

    index_url: str = PYPI_SIMPLE
    ca_bundle: str = ""  # PEM file pip trusts besides its own (a TLS-intercepting proxy)
    python_version: str = "3.11"
    platforms: tuple[str, ...] = field(default_factory=workspace_platforms)
    timeout_seconds: float = 300
    max_wheel_bytes: int = DEFAULT_MAX_WHEEL_BYTES
    python: str = sys.executable  # the interpreter whose pip runs the download

    def pip_args(self, requirement: Requirement, dest: Path) -> list[str]:
        abi = "cp" + self.python_version.replace(".", "")
        args = [self.python, "-m", "pip", "--isolated", "--disable-pip-version-check", "download",
                "--only-binary=:all:", "--no-deps", "--progress-bar", "off", "--no-cache-dir",
                "--index-url", self.index_url, "--python-version", self.python_version,
                "--implementation", "cp", "--abi", abi, "--dest", str(dest)]
        for platform in self.platforms:
            args += ["--platform", platform]
        if self.ca_bundle:
            args += ["--cert", self.ca_bundle]
        return args + [str(requirement)]


def download_wheel(requirement: Requirement, settings: DownloadSettings) -> tuple[WheelInfo, bytes]:
    """The one wheel of `requirement` for the workspaces, checked; Refused if the index has none."""
    with tempfile.TemporaryDirectory(prefix="spe-mirror-") as tmp:
        dest = Path(tmp)
        args = settings.pip_args(requirement, dest)
        log.info("downloading %s from %s", requirement, settings.index_url)
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=settings.timeout_seconds)
        except subprocess.TimeoutExpired:
            raise Failure(f"downloading {requirement} from {settings.index_url} took longer than "
                          f"{settings.timeout_seconds:g} s") from None
        if done.returncode != 0:
            log.info("pip download %s failed:\n%s", requirement, done.stderr[-4000:])
            raise Refused(f"{requirement} cannot be fetched from {settings.index_url}: {_reason(done.stderr)}")
        wheels = [p for p in dest.iterdir() if p.is_file()]
        if len(wheels) != 1 or not wheels[0].name.endswith(".whl"):
            raise Failure(f"pip download of {requirement} left {[p.name for p in wheels]}, not one wheel")
        size = wheels[0].stat().st_size
        if size > settings.max_wheel_bytes:
            raise Refused(f"{wheels[0].name} is {size} bytes; the mirror takes wheels up to "
                          f"{settings.max_wheel_bytes} bytes")
        data = wheels[0].read_bytes()
    return read_wheel(wheels[0].name, data, requirement), data


def _reason(stderr: str) -> str:
    """pip's own reason, one line: its last ERROR line (e.g. 'No matching distribution found')."""
    errors = [line.removeprefix("ERROR:").strip() for line in stderr.splitlines() if line.startswith("ERROR:")]
    if errors:
        return errors[-1][:300]
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "pip failed without a message"
