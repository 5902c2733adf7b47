"""Search of the public catalogue: full text and facets (pure).

Full text: every word of the query (case and accents folded) must appear in the entry's titles,
descriptions, keywords, holder, population or variables (name and description). Facets: theme,
holder, coverage (countries), access rights, language; each facet's counts are those of the
entries that match the query and every *other* selected facet, as faceted search usually does.
`covers` keeps the entries whose time coverage includes that year.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

FACETS = ("theme", "holder", "coverage", "access_rights", "language")


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def facet_values(entry: dict) -> dict[str, set[str]]:
    cov = entry.get("coverage") or {}
    return {
        "theme": set(entry.get("theme") or []),
        "holder": {entry["holder"]["id"]},
        "coverage": set(cov.get("spatial") or []),
        "access_rights": {entry.get("access_rights", "NON_PUBLIC")},
        "language": set(entry.get("languages") or []),
    }


def search_text(entry: dict, variable_keys: list[str] | None = None) -> str:
    parts = [entry["dataset"], entry["holder"]["name"]]
    for key in ("title", "description", "legal_basis", "provenance"):
        parts += list((entry.get(key) or {}).values())
    for words in (entry.get("keywords") or {}).values():
        parts += words
    parts += list(((entry.get("coverage") or {}).get("population") or {}).values())
    for key, texts in (entry.get("variables") or {}).items():
        parts += [key, *texts.values()]
    parts += variable_keys or []
    return fold(" ".join(parts))


@dataclass
class SearchResult:
    entries: list[dict]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    total: int = 0


def _covers(entry: dict, year: int) -> bool:
    cov = entry.get("coverage") or {}
    start = int(cov["from"][:4]) if cov.get("from") else -10**6
    end = int(cov["to"][:4]) if cov.get("to") else 10**6
    return start <= year <= end


def search(entries: list[dict], query: str = "", filters: dict[str, set[str]] | None = None,
           covers: int | None = None, texts: dict[str, str] | None = None) -> SearchResult:
    """Entries matching `query` and `filters` ({facet: allowed values}; empty = any), with facet counts.
    `texts`: dataset -> precomputed `search_text` (else computed here)."""
    filters = {k: v for k, v in (filters or {}).items() if v and k in FACETS}
    words = fold(query).split()
    texts = texts or {}

    def text_ok(e: dict) -> bool:
        t = texts.get(e["dataset"]) or search_text(e)
        return all(w in t for w in words) and (covers is None or _covers(e, covers))

    base = [e for e in entries if text_ok(e)]
    values = {e["dataset"]: facet_values(e) for e in base}

    def ok(e: dict, skip: str | None = None) -> bool:
        return all(values[e["dataset"]][f] & allowed for f, allowed in filters.items() if f != skip)

    result = [e for e in base if ok(e)]
    facets = {}
    for f in FACETS:
        counts: dict[str, int] = {}
        for e in base:
            if ok(e, skip=f):
                for v in values[e["dataset"]][f]:
                    counts[v] = counts.get(v, 0) + 1
        facets[f] = dict(sorted(counts.items()))
    return SearchResult(entries=result, facets=facets, total=len(result))
