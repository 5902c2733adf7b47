"""`make bench`: run every benchmark module with its default (modest) size."""

from __future__ import annotations

import importlib
import subprocess
import sys

BENCHMARKS = ["synth", "provision", "audit", "egress", "egress_service", "dp", "spawn", "k8s_spawn"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        try:
            importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            print(f"bench: {name} not present, skipped", file=sys.stderr)
            continue
        print(f"bench: running {name}", file=sys.stderr)
        if subprocess.call([sys.executable, "-m", f"bench.{name}", *sys.argv[1:]]) != 0:
            failed.append(name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
