"""`make bench`: run every benchmark module with its default (modest) size."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["synth", "provision", "audit", "egress", "egress_service", "dp", "spawn", "k8s_spawn", "recorder", "ux"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"bench: running {name}", file=sys.stderr)
        if subprocess.call([sys.executable, "-m", f"bench.{name}", *sys.argv[1:]]) != 0:
            failed.append(name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
