"""ACRO-style policy files (issue 15): mapped onto the permit's egress rules, or refused whole."""

import pytest

from hub.exceptions import InvalidInput
from hub.permits.acro import egress_from_acro, load_acro_policy, merge_acro
from hub.permits.model import parse_permit
from tests.conftest import EXAMPLES


def test_the_example_file_maps_onto_spe_names():
    assert load_acro_policy(EXAMPLES / "acro-policy.yaml") == {
        "threshold": 10, "dof_threshold": 10, "dominance_n": 2, "dominance_k": 0.9, "p_percent": 0.1,
        "check_missing_values": True, "zeros_are_disclosive": True}


@pytest.mark.parametrize("doc, words", [
    ({"safe_threshold": 0}, "minimum"), ({"safe_threshold": 5.5}, "integer"), ({"safe_nk_k": 1.5}, "maximum"),
    ({"safe_pratio_p": 1}, "exclusiveMaximum|less than"), ({"zeros_are_disclosive": "yes"}, "boolean"),
    ({"safe_treshold": 10}, "unknown ACRO policy key"), ({"safe_nk_n": 11}, "maximum"),
])
def test_bad_values_and_unknown_keys_are_refused_by_name(doc, words):
    with pytest.raises(InvalidInput, match=words.split("|")[0] if "|" not in words else None) as err:
        egress_from_acro(doc)
    assert next(iter(doc)) in (err.value.field or "") + str(err.value)


def test_bad_yaml_is_one_clear_error(tmp_path):
    bad = tmp_path / "acro.yaml"
    bad.write_text("safe_threshold: [10\n")
    with pytest.raises(InvalidInput, match="invalid YAML at line"):
        load_acro_policy(bad)


def test_a_permit_reference_conflicting_with_its_own_egress_is_refused():
    doc = {"egress": {"threshold": 5, "acro_policy": "x.yaml"}}
    with pytest.raises(InvalidInput, match="set it in one place"):
        merge_acro(doc, {"threshold": 10}, "x.yaml", override=False)
    assert merge_acro(doc, {"threshold": 10}, "x.yaml", override=True)["egress"]["threshold"] == 10


def test_merged_values_become_the_permit_policy():
    from tests.conftest import EXAMPLES as ex
    import yaml

    doc = yaml.safe_load((ex / "demo-gibleed.yaml").read_text())
    permit = parse_permit(merge_acro(doc, {"threshold": 11, "zeros_are_disclosive": False}, "a.yaml", override=True))
    assert permit.egress.threshold == 11 and permit.egress.zeros_are_disclosive is False
    assert permit.egress.acro_policy == "a.yaml" and permit.egress.require_provenance is True
