"""Find the Debian mirror this host's apt uses, for building the base image with debootstrap.

Reads /etc/apt/sources.list (one-line format) and /etc/apt/sources.list.d/*.list|*.sources
(deb822) and prints two lines: the main archive URL (the entry carrying SUITE) and the
security archive URL (the entry carrying SUITE-security, or the Debian default). Standard
library only: it runs on the bare host before any venv exists.

Usage: python3 apt_sources.py [SUITE] [ROOT]   (ROOT defaults to /etc/apt)
"""

import sys
from pathlib import Path

DEFAULT_MAIN = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"


def parse_one_line(text: str) -> list[tuple[str, list[str]]]:
    """`deb [opts] URI SUITE COMPONENTS…` lines → [(uri, [suite])] for binary entries."""
    entries = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            # skip the option block `[arch=amd64 signed-by=…]`, possibly spread over words
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            entries.append((words[0], [words[1]]))
    return entries


def parse_deb822(text: str) -> list[tuple[str, list[str]]]:
    """deb822 stanzas with `Types: deb` → [(uri, suites)]; one entry per URI."""
    entries = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        entries.extend((uri, suites) for uri in fields.get("uris", "").split())
    return entries


def find_mirrors(suite: str, root: Path) -> tuple[str, str]:
    entries = []
    one_line = root / "sources.list"
    if one_line.is_file():
        entries += parse_one_line(one_line.read_text(errors="replace"))
    parts = root / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                entries += parse_one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                entries += parse_deb822(path.read_text(errors="replace"))
    main = next((uri for uri, suites in entries if suite in suites), DEFAULT_MAIN)
    security = next(
        (uri for uri, suites in entries if f"{suite}-security" in suites), DEFAULT_SECURITY
    )
    return main.rstrip("/"), security.rstrip("/")


if __name__ == "__main__":
    suite_arg = sys.argv[1] if len(sys.argv) > 1 else "bookworm"
    root_arg = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/etc/apt")
    for url in find_mirrors(suite_arg, root_arg):
        print(url)
