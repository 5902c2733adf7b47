"""images/base/build-base.sh and the base image it yields, on a real Docker engine."""

import os
import subprocess
import uuid

import pytest

from tools.images import BUILD_BASE_SCRIPT, ensure_images, workspace_tag

pytestmark = pytest.mark.docker


def test_pull_only_mode_fails_with_one_clear_line(tmp_path):
    env = {
        **os.environ,
        "BASE_IMAGE": f"spe-test-missing-{uuid.uuid4().hex[:8]}/none:0",
        "SPE_BASE_MODE": "pull",
        "SPE_BUILD_LOG_DIR": str(tmp_path),
    }
    result = subprocess.run(["bash", str(BUILD_BASE_SCRIPT)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 1
    assert result.stdout == ""  # no image reference for the caller to use
    errors = [line for line in result.stderr.splitlines() if line.startswith("build-base: error:")]
    assert len(errors) == 1, result.stderr
    assert "docker pull" in errors[0] and str(tmp_path / "build-base.log") in errors[0]
    assert (tmp_path / "build-base.log").read_text().strip()


def test_base_and_workspace_images_have_what_the_dockerfile_relies_on():
    images = ensure_images()
    base = next(tag for tag in images if not tag.startswith("spe/workspace:"))
    checks = {
        # any base (registry or debootstrap): an interpreter with venv/ensurepip and TLS roots
        base: "python3 -c 'import venv, ensurepip, ssl' && test -s /etc/ssl/certs/ca-certificates.crt && echo ok",
        # the workspace: tini as PID 1 and the venv first on PATH
        workspace_tag(images): "command -v tini >/dev/null && command -v python && echo ok",
    }
    for image, script in checks.items():
        result = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--user", "1000", "--entrypoint", "sh", image, "-c", script],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"{image}: {result.stderr}"
        assert result.stdout.split()[-1] == "ok", f"{image}: {result.stdout}"
    assert "/opt/spe/bin/python" in result.stdout
