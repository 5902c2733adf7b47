"""Validation of the catalogue's HealthDCAT-AP graphs with pySHACL against the vendored shapes.

Shapes (hub/frontoffice/catalogue/shapes/, sources and licences in SOURCES.md there):
- DCAT-AP 3.0.0 `shapes.ttl` and `range.ttl` (SEMIC, the constraints and class ranges HealthDCAT-AP imports);
- HealthDCAT-AP Release 5 NON_PUBLIC shapes (DG SANTE), which add to the same node shapes.

A dataset whose access rights are NON_PUBLIC is checked against all of them. For RESTRICTED and
PUBLIC datasets the HealthDCAT-AP properties that the file marks as "mandatory for datasets with
NON_PUBLIC access level" (contact point, keyword, type, provenance) and its `hasValue NON_PUBLIC`
rule are left out; everything else applies. A failure names the node shape (e.g. `Dataset_Shape`),
the property path and the shape's message. Must not import `egress`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from rdflib import Graph, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF, SH

SHAPES_DIR = Path(__file__).parent / "shapes"
SHAPE_FILES = ("dcat-ap-3.0.0-shapes.ttl", "dcat-ap-3.0.0-range.ttl", "healthdcat-ap-r5-non-public-shapes.ttl")
DATASET_SHAPE = URIRef("https://semiceu.github.io/DCAT-AP/releases/3.0.0/html/shacl/shapes.ttl#Dataset_Shape")
NON_PUBLIC_ONLY = (DCAT.contactPoint, DCAT.keyword, DCTERMS.type, DCTERMS.provenance)
NON_PUBLIC = "NON_PUBLIC"


@dataclass(frozen=True)
class Violation:
    shape: str  # the node shape, e.g. "Dataset_Shape"
    path: str  # the property path, e.g. "dct:title"
    focus: str  # the resource that fails
    message: str
    severity: str

    def line(self) -> str:
        return f"{self.shape} {self.path}: {self.message} (at {self.focus})"


@functools.lru_cache(maxsize=2)
def shapes_graph(access_level: str = NON_PUBLIC) -> Graph:
    """The shapes for datasets of one access level (cached: parsing them takes a while)."""
    g = Graph()
    for name in SHAPE_FILES:
        g.parse(SHAPES_DIR / name, format="turtle")
    if access_level != NON_PUBLIC:
        for prop in list(g.objects(DATASET_SHAPE, SH.property)):
            path = g.value(prop, SH.path)
            if (path in NON_PUBLIC_ONLY and g.value(prop, SH.minCount) is not None) or \
                    (path == DCTERMS.accessRights and g.value(prop, SH.hasValue) is not None):
                g.remove((DATASET_SHAPE, SH.property, prop))
    return g


def _owner(shapes: Graph, shape) -> str:
    """The named node shape a (blank) property shape belongs to."""
    node = next(iter(shapes.subjects(SH.property, shape)), None) if not isinstance(shape, URIRef) else shape
    if node is None:
        return "(shape)"
    return str(node).rsplit("#", 1)[-1]


def _short(g: Graph, term) -> str:
    if term is None:
        return "(node)"
    try:
        return g.namespace_manager.normalizeUri(term)
    except Exception:  # a complex path (blank node list)
        return str(term)


def validate(data: Graph, access_level: str = NON_PUBLIC) -> list[Violation]:
    """Violations of `data` against the shapes of `access_level` ([] when it conforms)."""
    from pyshacl import validate as shacl_validate

    shapes = shapes_graph(access_level)
    conforms, report, _ = shacl_validate(data, shacl_graph=shapes, inference="none", advanced=True,
                                         allow_warnings=True)
    if conforms:
        return []
    out = []
    for result in report.subjects(RDF.type, SH.ValidationResult):
        severity = report.value(result, SH.resultSeverity)
        if severity != SH.Violation:
            continue
        source = report.value(result, SH.sourceShape)
        message = report.value(result, SH.resultMessage)
        out.append(Violation(shape=_owner(shapes, source), path=_short(data, report.value(result, SH.resultPath)),
                             focus=str(report.value(result, SH.focusNode)), message=str(message or "violated"),
                             severity="violation"))
    return sorted(set(out), key=lambda v: (v.focus, v.shape, v.path, v.message))
