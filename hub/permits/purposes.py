"""EHDS purposes: the Art. 53(1) categories a permit may name, and Art. 54 prohibited purposes."""

ALLOWED = {
    "public_health": "Art. 53(1)(a) public interest in public and occupational health",
    "policy_making": "Art. 53(1)(b) policy-making and regulatory activities of public sector bodies",
    "official_statistics": "Art. 53(1)(c) national, multinational and Union-level official statistics",
    "education": "Art. 53(1)(d) education or teaching in health or care sectors",
    "scientific_research": "Art. 53(1)(e) scientific research related to health or care sectors",
    "care_improvement": "Art. 53(1)(f) improvement of the delivery of care and treatment optimisation",
}

PROHIBITED = {
    "detrimental_decisions": "Art. 54(a) decisions detrimental to a natural person or group",
    "job_decisions": "Art. 54(b) decisions on job offers or employment terms",
    "insurance_or_credit_exclusion": "Art. 54(b) excluding from insurance or credit, or less favourable terms",
    "advertising": "Art. 54(c) advertising or marketing activities",
    "marketing": "Art. 54(c) advertising or marketing activities",
    "harmful_products": "Art. 54(d) developing harmful products or services (illicit drugs, alcohol, tobacco…)",
    "ethics_conflict": "Art. 54(e) activities conflicting with ethical provisions of national law",
}


def check_purpose(purpose: str) -> None:
    from hub.exceptions import InvalidInput

    if purpose in PROHIBITED:
        raise InvalidInput(f"purpose {purpose!r} is prohibited by EHDS {PROHIBITED[purpose]}", field="purpose")
    if purpose not in ALLOWED:
        raise InvalidInput(f"unknown purpose {purpose!r}; allowed (EHDS Art. 53(1)): {', '.join(ALLOWED)}",
                           field="purpose")
