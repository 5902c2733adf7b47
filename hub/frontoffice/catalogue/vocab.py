"""Controlled vocabularies a catalogue entry uses, as codes with their IRIs and labels (pure data).

EU authority tables (Publications Office): data themes, access rights, frequencies, countries,
languages. HealthDCAT-AP health categories: the 17 categories of EHDS Art. 51(1), as published in
the HealthData@EU vocabulary `healthcategories`.
"""

EU_AUTHORITY = "http://publications.europa.eu/resource/authority/"
HEALTH_CATEGORIES_SCHEME = "https://hdeu-dcat.data.health.europa.eu/resource/authority/healthcategories"

DATA_THEMES = {
    "HEAL": {"en": "Health", "fr": "Santé"},
    "SOCI": {"en": "Population and society", "fr": "Population et société"},
    "GOVE": {"en": "Government and public sector", "fr": "Gouvernement et secteur public"},
    "ECON": {"en": "Economy and finance", "fr": "Économie et finances"},
    "ENVI": {"en": "Environment", "fr": "Environnement"},
    "EDUC": {"en": "Education, culture and sport", "fr": "Éducation, culture et sport"},
    "TECH": {"en": "Science and technology", "fr": "Science et technologie"},
    "REGI": {"en": "Regions and cities", "fr": "Régions et villes"},
}

ACCESS_RIGHTS = {
    "NON_PUBLIC": {"en": "Non-public (through a data permit)", "fr": "Non public (sur autorisation)"},
    "RESTRICTED": {"en": "Restricted", "fr": "Restreint"},
    "PUBLIC": {"en": "Public", "fr": "Public"},
}

FREQUENCIES = {
    "CONT": {"en": "continuous", "fr": "continue"}, "DAILY": {"en": "daily", "fr": "quotidienne"},
    "WEEKLY": {"en": "weekly", "fr": "hebdomadaire"}, "MONTHLY": {"en": "monthly", "fr": "mensuelle"},
    "QUARTERLY": {"en": "quarterly", "fr": "trimestrielle"}, "ANNUAL": {"en": "annual", "fr": "annuelle"},
    "IRREG": {"en": "irregular", "fr": "irrégulière"}, "NEVER": {"en": "never", "fr": "jamais"},
    "UNKNOWN": {"en": "unknown", "fr": "inconnue"},
}

LANGUAGES = {"ENG": {"en": "English", "fr": "anglais"}, "FRA": {"en": "French", "fr": "français"},
             "DEU": {"en": "German", "fr": "allemand"}, "NLD": {"en": "Dutch", "fr": "néerlandais"},
             "ITA": {"en": "Italian", "fr": "italien"}, "SPA": {"en": "Spanish", "fr": "espagnol"},
             "MUL": {"en": "multiple languages", "fr": "plusieurs langues"}}

DATASET_TYPES = {
    "PERSONAL_DATA": {"en": "Personal data", "fr": "Données personnelles"},
    "SYNTHETIC_DATA": {"en": "Synthetic data", "fr": "Données synthétiques"},
    "STATISTICAL": {"en": "Statistical data", "fr": "Données statistiques"},
    "TEST_DATA": {"en": "Test data", "fr": "Données de test"},
}

# EHDS Art. 51(1) categories (HealthDCAT-AP `healthdcatap:healthCategory`)
HEALTH_CATEGORIES = {
    "EHRS": {"en": "Electronic health data from EHRs", "fr": "Dossiers de santé électroniques"},
    "DIOH": {"en": "Data on factors impacting on health", "fr": "Données sur les facteurs influant sur la santé"},
    "NRPE": {"en": "Aggregated data on healthcare needs, resources, provision, expenditure and financing",
             "fr": "Données agrégées sur les besoins, ressources, prestations, dépenses et financement des soins"},
    "RPDG": {"en": "Data on pathogens that impact human health", "fr": "Données sur les agents pathogènes"},
    "HRAD": {"en": "Healthcare-related administrative data (dispensations, claims, reimbursements)",
             "fr": "Données administratives liées aux soins (dispensation, réclamations, remboursements)"},
    "HGPD": {"en": "Human genetic, epigenomic and genomic data", "fr": "Données génétiques, épigénomiques et génomiques humaines"},
    "HPML": {"en": "Other human molecular data (proteomic, transcriptomic, metabolomic, lipidomic, other omic)",
             "fr": "Autres données moléculaires humaines (protéomiques, transcriptomiques, métabolomiques…)"},
    "PGEH": {"en": "Personal electronic health data generated through medical devices",
             "fr": "Données de santé générées automatiquement par des dispositifs médicaux"},
    "WELA": {"en": "Data from wellness applications", "fr": "Données d'applications de bien-être"},
    "IDHP": {"en": "Data on health professionals involved in treatment", "fr": "Données sur les professionnels de santé"},
    "PHDR": {"en": "Population-based health data registries", "fr": "Registres de santé en population"},
    "MRMR": {"en": "Data from medical registries and mortality registries", "fr": "Registres médicaux et de mortalité"},
    "EHCT": {"en": "Data from clinical trials, clinical studies and clinical investigations",
             "fr": "Données d'essais, d'études et d'investigations cliniques"},
    "EMRD": {"en": "Other health data from medical devices", "fr": "Autres données de santé de dispositifs médicaux"},
    "RMMD": {"en": "Data from registries for medicinal products and medical devices",
             "fr": "Registres des médicaments et dispositifs médicaux"},
    "RQSH": {"en": "Data from research cohorts, questionnaires and surveys", "fr": "Cohortes de recherche, questionnaires et enquêtes"},
    "EINS": {"en": "Health data from biobanks and associated databases", "fr": "Biobanques et bases de données associées"},
}

QUALITY_LEVELS = ("bronze", "silver", "gold", "platinum")  # EHDS Art. 78 data quality and utility label


def eu_iri(table: str, code: str) -> str:
    return f"{EU_AUTHORITY}{table}/{code}"


def health_category_iri(code: str) -> str:
    return f"{HEALTH_CATEGORIES_SCHEME}/{code}"
