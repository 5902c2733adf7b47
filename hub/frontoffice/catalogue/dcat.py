"""HealthDCAT-AP (the EHDS profile of DCAT-AP 3) graphs of the catalogue, built with rdflib (pure).

`make_catalogue_graph(items, config)` builds the `dcat:Catalog` of the HDAB with one `dcat:Dataset`
per entry: titles and descriptions in each language, publisher (the data holder, with its contact
point), `healthdcatap:hdab` (this HDAB), themes, health categories, keywords, coverage in time and
space, population, ages, counts, legal basis, provenance, access rights, update frequency, the EHDS
quality label, one distribution (access through an application to this HDAB) and the variables as a
CSVW table group with each column's disclosure class (`spe:disclosureClass`). Paging for harvesters
uses Hydra's `PartialCollectionView`, as DCAT harvesters (ckanext-dcat) read it.

No I/O: the caller passes entries and the registered dataset schemas. Must not import `egress`.
"""

from __future__ import annotations

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from hub.frontoffice.catalogue import vocab
from hub.frontoffice.catalogue.model import population_counts, variables

DCATAP = Namespace("http://data.europa.eu/r5r/")
HEALTHDCATAP = Namespace("http://healthdataportal.eu/ns/health#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
DQV = Namespace("http://www.w3.org/ns/dqv#")
OA = Namespace("http://www.w3.org/ns/oa#")
DPV = Namespace("https://w3id.org/dpv#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
ELI = Namespace("http://data.europa.eu/eli/ontology#")

EHDS = URIRef("http://data.europa.eu/eli/reg/2025/327/oj")  # Regulation (EU) 2025/327
GDPR = URIRef("http://data.europa.eu/eli/reg/2016/679/oj")
LANGS = ("en", "fr")

PREFIXES = {"dcat": DCAT, "dct": DCTERMS, "foaf": FOAF, "dcatap": DCATAP, "healthdcatap": HEALTHDCATAP,
            "vcard": VCARD, "dqv": DQV, "oa": OA, "dpv": DPV, "csvw": CSVW, "hydra": HYDRA, "xsd": XSD,
            "skos": SKOS, "eli": ELI}


def spe_namespace(base_url: str) -> Namespace:
    """SPE's own terms (the disclosure class of a variable), under the catalogue's base URL."""
    return Namespace(base_url + "ns#")


def dataset_iri(base_url: str, name: str) -> URIRef:
    return URIRef(f"{base_url}catalogue/datasets/{name}")


def catalogue_iri(base_url: str) -> URIRef:
    return URIRef(f"{base_url}catalogue")


def new_graph(base_url: str) -> Graph:
    g = Graph()
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns)
    g.bind("spe", spe_namespace(base_url))
    return g


def _i18n(g: Graph, subject, predicate, value: dict | None) -> None:
    for lang in LANGS:
        if value and value.get(lang):
            g.add((subject, predicate, Literal(value[lang], lang=lang)))


def _ref(g: Graph, iri: str, cls, labels: dict | None = None, scheme: str | None = None) -> URIRef:
    """A reference to a vocabulary term, typed as DCAT-AP's range shapes expect. The EU validator
    finds these types in the authority tables it preloads; a harvester without them finds them here."""
    ref = URIRef(iri)
    g.add((ref, RDF.type, cls))
    if cls == SKOS.Concept:
        _i18n(g, ref, SKOS.prefLabel, labels or {"en": iri.rsplit("/", 1)[-1]})
        if scheme:
            g.add((ref, SKOS.inScheme, URIRef(scheme)))
    return ref


def _contact(g: Graph, name: str, email: str, url: str | None = None) -> BNode:
    kind = BNode()
    g.add((kind, RDF.type, VCARD.Kind))
    g.add((kind, VCARD.fn, Literal(name)))
    g.add((kind, VCARD.hasEmail, URIRef(f"mailto:{email}")))
    if url:
        g.add((kind, VCARD.hasURL, URIRef(url)))
    return kind


def _agent(g: Graph, iri: URIRef, name: str, email: str, url: str | None = None) -> URIRef:
    g.add((iri, RDF.type, FOAF.Agent))
    g.add((iri, FOAF.name, Literal(name)))
    g.add((iri, DCAT.contactPoint, _contact(g, name, email, url)))
    return iri


def add_hdab(g: Graph, config: dict) -> URIRef:
    h = config["hdab"]
    iri = URIRef(f"{config['catalogue']['base_url']}agents/{h['id']}")
    if (iri, RDF.type, FOAF.Agent) not in g:
        _agent(g, iri, h["name"]["en"], h["email"], h.get("url"))
        if h["name"].get("fr"):
            g.add((iri, FOAF.name, Literal(h["name"]["fr"], lang="fr")))
    return iri


def add_dataset(g: Graph, entry: dict, dataset_schema: dict, config: dict) -> URIRef:
    """The `dcat:Dataset` of one entry (and its distribution, agents and variables)."""
    base = config["catalogue"]["base_url"]
    spe = spe_namespace(base)
    ds = dataset_iri(base, entry["dataset"])
    g.add((ds, RDF.type, DCAT.Dataset))
    g.add((ds, DCTERMS.identifier, Literal(str(ds))))
    _i18n(g, ds, DCTERMS.title, entry["title"])
    _i18n(g, ds, DCTERMS.description, entry["description"])
    for lang in LANGS:
        for kw in ((entry.get("keywords") or {}).get(lang) or []):
            g.add((ds, DCAT.keyword, Literal(kw, lang=lang)))
    for code in entry["theme"]:
        g.add((ds, DCAT.theme, _ref(g, vocab.eu_iri("data-theme", code), SKOS.Concept, vocab.DATA_THEMES[code],
                                    vocab.EU_AUTHORITY + "data-theme")))
    for code in entry["health_category"]:
        g.add((ds, HEALTHDCATAP.healthCategory, _ref(g, vocab.health_category_iri(code), SKOS.Concept,
                                                     vocab.HEALTH_CATEGORIES[code], vocab.HEALTH_CATEGORIES_SCHEME)))
    code = entry["dataset_type"]
    g.add((ds, DCTERMS.type, _ref(g, vocab.eu_iri("dataset-type", code), SKOS.Concept, vocab.DATASET_TYPES[code],
                                  vocab.EU_AUTHORITY + "dataset-type")))
    g.add((ds, DCTERMS.accessRights, _ref(g, vocab.eu_iri("access-right", entry["access_rights"]),
                                          DCTERMS.RightsStatement)))
    g.add((ds, DCTERMS.accrualPeriodicity, _ref(g, vocab.eu_iri("frequency", entry["update_frequency"]),
                                                DCTERMS.Frequency)))
    for code in entry.get("languages") or []:
        g.add((ds, DCTERMS.language, _ref(g, vocab.eu_iri("language", code), DCTERMS.LinguisticSystem)))
    for law in (EHDS, GDPR):
        g.add((ds, DCATAP.applicableLegislation, _ref(g, str(law), ELI.LegalResource)))
    g.add((ds, DCAT.landingPage, _ref(g, f"{base}catalogue/{entry['dataset']}", FOAF.Document)))

    holder = entry["holder"]
    publisher = _agent(g, URIRef(f"{base}agents/{holder['id']}"), holder["name"], holder["email"], holder.get("url"))
    g.add((publisher, HEALTHDCATAP.trustedDataHolder, Literal(bool(holder.get("trusted", False)))))
    g.add((ds, DCTERMS.publisher, publisher))
    g.add((ds, HEALTHDCATAP.hdab, add_hdab(g, config)))
    contact = entry.get("contact")
    if contact:
        g.add((ds, DCAT.contactPoint, _contact(g, contact["name"], contact["email"], contact.get("url"))))
    if entry.get("provenance"):
        prov = BNode()
        g.add((prov, RDF.type, DCTERMS.ProvenanceStatement))
        _i18n(g, prov, RDFS.label, entry["provenance"])
        g.add((ds, DCTERMS.provenance, prov))
    basis = BNode()
    g.add((basis, RDF.type, DPV.LegalBasis))
    _i18n(g, basis, DCTERMS.description, entry["legal_basis"])
    g.add((ds, DPV.hasLegalBasis, basis))

    cov = entry.get("coverage") or {}
    if cov.get("from") or cov.get("to"):
        period = BNode()
        g.add((period, RDF.type, DCTERMS.PeriodOfTime))
        if cov.get("from"):
            g.add((period, DCAT.startDate, Literal(cov["from"], datatype=XSD.date)))
        if cov.get("to"):
            g.add((period, DCAT.endDate, Literal(cov["to"], datatype=XSD.date)))
        g.add((ds, DCTERMS.temporal, period))
    for code in cov.get("spatial") or []:
        g.add((ds, DCTERMS.spatial, _ref(g, vocab.eu_iri("country", code), DCTERMS.Location)))
    _i18n(g, ds, HEALTHDCATAP.populationCoverage, cov.get("population"))
    for key, prop in (("min_age", HEALTHDCATAP.minTypicalAge), ("max_age", HEALTHDCATAP.maxTypicalAge)):
        if key in cov:
            g.add((ds, prop, Literal(cov[key], datatype=XSD.nonNegativeInteger)))
    persons, records = population_counts(dataset_schema)
    g.add((ds, HEALTHDCATAP.numberOfUniqueIndividuals, Literal(persons, datatype=XSD.nonNegativeInteger)))
    g.add((ds, HEALTHDCATAP.numberOfRecords, Literal(records, datatype=XSD.nonNegativeInteger)))

    label = entry.get("quality_label")
    if label:
        ann, body = BNode(), BNode()
        g.add((ann, RDF.type, DQV.QualityAnnotation))
        g.add((ann, OA.motivatedBy, DQV.qualityAssessment))
        g.add((ann, OA.hasTarget, ds))
        g.add((body, RDF.type, OA.TextualBody))
        text = f"EHDS data quality and utility label (Art. 78): {label['level']}"
        if label.get("issued"):
            text += f", issued {label['issued']}"
        g.add((body, RDF.value, Literal(text, lang="en")))
        g.add((ann, OA.hasBody, body))
        g.add((ds, DQV.hasQualityAnnotation, ann))

    dist = URIRef(f"{base}catalogue/datasets/{entry['dataset']}/access")
    g.add((dist, RDF.type, DCAT.Distribution))
    g.add((dist, DCAT.accessURL, URIRef(f"{base}applications/new?dataset={entry['dataset']}")))
    g.add((dist, DCATAP.applicableLegislation, _ref(g, str(EHDS), ELI.LegalResource)))
    g.add((dist, DCTERMS.title, Literal("Access through a data permit or a data request to the HDAB", lang="en")))
    g.add((dist, DCTERMS.title, Literal("Accès sur autorisation ou demande de données auprès de l'organisme", lang="fr")))
    g.add((ds, DCAT.distribution, dist))

    group = BNode()
    g.add((group, RDF.type, CSVW.TableGroup))
    g.add((group, DCTERMS.title, Literal(f"Variables of {entry['dataset']}", lang="en")))
    tables: dict[str, BNode] = {}
    for v in variables(entry, dataset_schema):
        table = tables.get(v["table"])
        if table is None:
            table = tables[v["table"]] = BNode()
            g.add((table, RDF.type, CSVW.Table))
            g.add((table, DCTERMS.title, Literal(v["table"])))
            g.add((group, CSVW.table, table))
        col = BNode()
        g.add((col, RDF.type, CSVW.Column))
        g.add((col, CSVW.name, Literal(v["column"])))
        g.add((col, CSVW.titles, Literal(v["key"])))
        g.add((col, CSVW.title, Literal(v["key"])))
        g.add((col, CSVW.datatype, Literal(v["type"].lower() or "string")))
        desc = v["description"] or {"en": f"{v['key']} ({v['class'].replace('_', ' ')})"}
        _i18n(g, col, DCTERMS.description, desc)
        g.add((col, spe.disclosureClass, Literal(v["class"])))
        g.add((table, CSVW.column, col))
    g.add((ds, HEALTHDCATAP.hasVariables, group))
    return ds


def make_catalogue_graph(items: list[tuple[dict, dict]], config: dict, *, page: int | None = None,
                         total: int | None = None, page_size: int | None = None) -> Graph:
    """The catalogue with the datasets of `items` ([(entry, dataset schema)]). With `page`, the
    catalogue is one page of `total` datasets and carries a Hydra view to the others."""
    base = config["catalogue"]["base_url"]
    g = new_graph(base)
    cat = catalogue_iri(base)
    g.add((cat, RDF.type, DCAT.Catalog))
    _i18n(g, cat, DCTERMS.title, config["catalogue"].get("title") or {"en": "SPE dataset catalogue"})
    _i18n(g, cat, DCTERMS.description, config["catalogue"].get("description") or {"en": "Health datasets"})
    g.add((cat, DCTERMS.publisher, add_hdab(g, config)))
    g.add((cat, DCATAP.applicableLegislation, _ref(g, str(EHDS), ELI.LegalResource)))
    g.add((cat, FOAF.homepage, _ref(g, f"{base}catalogue", FOAF.Document)))
    for entry, schema in items:
        g.add((cat, DCAT.dataset, add_dataset(g, entry, schema, config)))
    if page is not None and total is not None and page_size:
        last = max(1, -(-total // page_size))
        view = URIRef(f"{base}catalogue.ttl?page={page}")
        g.add((view, RDF.type, HYDRA.PartialCollectionView))
        g.add((view, HYDRA.totalItems, Literal(total, datatype=XSD.integer)))
        g.add((view, HYDRA.itemsPerPage, Literal(page_size, datatype=XSD.integer)))
        g.add((view, HYDRA.first, URIRef(f"{base}catalogue.ttl?page=1")))
        g.add((view, HYDRA.last, URIRef(f"{base}catalogue.ttl?page={last}")))
        if page > 1:
            g.add((view, HYDRA.previous, URIRef(f"{base}catalogue.ttl?page={page - 1}")))
        if page < last:
            g.add((view, HYDRA.next, URIRef(f"{base}catalogue.ttl?page={page + 1}")))
        g.add((cat, HYDRA.view, view))
    return g


FORMATS = {"ttl": ("turtle", "text/turtle; charset=utf-8"), "jsonld": ("json-ld", "application/ld+json")}


def serialize(g: Graph, fmt: str) -> bytes:
    rdf_format, _ = FORMATS[fmt]
    if rdf_format == "json-ld":
        ours = {*PREFIXES, "spe", "rdf", "rdfs"}
        context = {prefix: str(ns) for prefix, ns in g.namespaces() if prefix in ours}
        return g.serialize(format="json-ld", context=context, indent=1).encode("utf-8")
    return g.serialize(format=rdf_format).encode("utf-8")
