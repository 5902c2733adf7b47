"""Small pure-Python wheels made in a test (PEP 427 zip with METADATA, WHEEL and a correct RECORD),
so that mirror and import tests need no index on the internet."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path


def make_wheel(directory: Path, name: str, version: str, code: str = "VALUE = 42\n",
               requires: tuple[str, ...] = ()) -> Path:
    """`<name>-<version>-py3-none-any.whl` in `directory`, with module `<name>` holding `code`."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    meta = [f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: test package {name}",
            "License: MIT", *[f"Requires-Dist: {r}" for r in requires]]
    files = {
        f"{module}/__init__.py": code.encode(),
        f"{dist}/METADATA": ("\n".join(meta) + "\n").encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: spe-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    out = Path(directory) / f"{module}-{version}-py3-none-any.whl"
    out.write_bytes(buffer.getvalue())
    return out
