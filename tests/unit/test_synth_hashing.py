"""Counter-based hashing of the synthetic data generator: known answers, bijection,
sensitivity to every key component, batch independence, and distribution sanity."""

import numpy as np
import pytest

from hub.synth import hashing as h


def test_mix_matches_reference_splitmix64():
    # first output of the reference splitmix64 seeded with 0 (Vigna), and the scalar twin
    assert int(h.mix(np.array([0], np.uint64))[0]) == 0xE220A8397B1DCDAF
    xs = np.array([0, 1, 2**63, 2**64 - 1, 123456789], dtype=np.uint64)
    assert [int(v) for v in h.mix(xs)] == [h.mix_int(int(x)) for x in xs]


def test_mix_does_not_modify_its_input_and_has_no_collisions():
    x = np.arange(200_000, dtype=np.uint64)
    before = x.copy()
    out = h.mix(x)
    assert np.array_equal(x, before)
    assert len(np.unique(out)) == len(x)


@pytest.mark.parametrize("change", ["seed", "stream", "person", "index"])
def test_row_keys_depend_on_every_component(change):
    pid, idx = np.arange(1, 1001), np.zeros(1000, np.int64)
    base = h.row_keys(7, "measurement", pid, idx)
    other = {
        "seed": lambda: h.row_keys(8, "measurement", pid, idx),
        "stream": lambda: h.row_keys(7, "drug_exposure", pid, idx),
        "person": lambda: h.row_keys(7, "measurement", pid + 1000, idx),
        "index": lambda: h.row_keys(7, "measurement", pid, idx + 1),
    }[change]()
    assert np.mean(base == other) == 0.0


def test_person_and_index_do_not_alias():
    # (person 1, event 2) and (person 2, event 1) must be different rows
    a = h.row_keys(1, "t", np.array([1, 2]), np.array([2, 1]))
    assert a[0] != a[1]


def test_keys_are_independent_of_batching():
    pid = np.arange(1, 5001)
    idx = pid % 7
    whole = h.field(h.row_keys(3, "visit_occurrence", pid, idx), 2)
    pieces = [h.field(h.row_keys(3, "visit_occurrence", pid[a:b], idx[a:b]), 2)
              for a, b in ((0, 1234), (1234, 1235), (1235, 5000))]
    assert np.array_equal(whole, np.concatenate(pieces))


def test_uniforms_are_uniform_and_fields_independent():
    keys = h.row_keys(11, "x", np.arange(200_000))
    u = h.uniform(h.field(keys, 0))
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.bincount((u * 20).astype(int), minlength=20)
    expected = len(u) / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45.3  # 19 degrees of freedom, p = 0.001
    hi, lo = h.uniform_pair(h.field(keys, 1))
    assert hi.max() < 1.0 and lo.max() < 1.0
    assert abs(np.corrcoef(hi, lo)[0, 1]) < 0.01
    assert abs(np.corrcoef(u, hi)[0, 1]) < 0.01


def test_normal_has_unit_moments():
    keys = h.row_keys(5, "z", np.arange(200_000))
    u1, u2 = h.uniform_pair(h.field(keys, 0))
    z = h.normal(u1, u2)
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1.0) < 0.01
    assert np.isfinite(z).all()
