"""The import contracts of pyproject.toml ([tool.importlinter]) hold for this tree, and would
catch a violation: `make test` fails the day hub imports egress."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_import_contract():
    run = lint_imports(REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_a_hub_module_importing_egress_breaks_the_contract(tmp_path):
    for name in ("hub", "egress", "tools"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / "hub" / "register.py", "a") as fh:
        fh.write("\nfrom egress.tables import egress_releases  # noqa\n")
    run = lint_imports(tmp_path)
    assert run.returncode != 0
    assert "hub.register -> egress.tables" in run.stdout
