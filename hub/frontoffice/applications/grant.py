"""From a granted application to permit documents (pure): one permit per granted dataset.

The permit holds the minimised variable list that was granted (never more than was requested), the
cohort, the team (the applicant as principal investigator), the dates (from the later of the
requested start and the decision day, for the granted months), and the HDAB's defaults for egress
and DP (`hdab.yaml`). A data request becomes a permit whose members are the HDAB's analyst (the
principal investigator, who answers it in a workspace) and the applicant as `recipient`, who may
download released outputs but never opens a workspace (hub.permits.access.ROLE_ACTIONS).
Datasets are not linked across permits: each extract is pseudonymised with its own key.
"""

from __future__ import annotations

from datetime import date, timedelta

from hub.frontoffice.applications.deadlines import add_months


def permit_id(application_id: str, index: int) -> str:
    return f"{application_id}-{index}"


def valid_dates(doc: dict, decided_on: date, months: int) -> tuple[date, date]:
    start = max(date.fromisoformat(doc["start"]), decided_on)
    return start, add_months(start, months) - timedelta(days=1)


def make_permit_documents(application_id: str, doc: dict, applicant: str, granted: dict, months: int,
                          decided_on: date, config: dict) -> list[dict]:
    """The permit documents of a grant; `granted`: dataset -> {table: [columns]} (a subset of the request)."""
    start, until = valid_dates(doc, decided_on, months)
    defaults = config["permits"]
    if doc["kind"] == "data_request":
        analyst = config["data_requests"]["analysts"][0]
        pi = analyst
        members = [{"username": analyst, "role": "principal_investigator"}]
        if applicant != analyst:
            members.append({"username": applicant, "role": "recipient"})
    else:
        pi = applicant
        members = [{"username": applicant, "role": "principal_investigator"}]
        members += [m for m in doc.get("team") or [] if m["username"] != applicant]
    resources = {**defaults["resources"], **(doc.get("resources") or {})}
    out = []
    by_name = {d["dataset"]: d for d in doc["datasets"]}
    for i, (dataset, tables) in enumerate(sorted(granted.items()), start=1):
        permit = {
            "id": permit_id(application_id, i),
            "title": doc["title"][:300],
            "purpose": doc["purpose"],
            "purpose_description": doc["purpose_description"][:5000],
            "organisation": doc["organisation"],
            "principal_investigator": pi,
            "members": members,
            "dataset": dataset,
            "tables": {t: sorted(cols) for t, cols in sorted(tables.items())},
            "valid_from": start.isoformat(),
            "valid_until": until.isoformat(),
            "egress": dict(defaults["egress"]),
            "dp": dict(defaults["dp"]),
            "resources": resources,
        }
        cohort = by_name[dataset].get("cohort")
        if cohort:
            permit["cohort"] = cohort
        out.append(permit)
    return out
