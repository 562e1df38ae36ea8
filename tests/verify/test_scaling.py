"""Width scaling: the bisection finds the smallest all-seeds success and reports the block size with it."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import strongticket.subsetsum

from strongticket.construct import pensia
from strongticket.construct.blocks import read_fc_target
from strongticket.verify.scaling import min_samples, scaling_table, theory_columns


def tiny_target() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * 0.3)
    return m.eval()


def test_min_samples_is_a_success_whose_predecessor_in_the_path_failed():
    r = min_samples(pensia.construct, tiny_target(), 0.05, seeds=(0, 1), n_max=31, method="pensia")
    assert r.samples is not None and r.max_error_at_samples <= 0.05
    assert (r.samples, True) in r.tried
    assert r.samples == 1 or (r.samples - 1, False) in r.tried or all(n >= r.samples for n, ok in r.tried if ok)
    again = pensia.construct(tiny_target(), per_weight_eps=0.05, samples=r.samples, seed=0, strict=False)
    assert r.hidden_per_input == again.provenance["block_size"] > 2 * r.samples


def test_scaling_rows_carry_the_theory_columns():
    rows = scaling_table(tiny_target(), [0.1], seeds=(0,), n_max_malach=8)
    th = rows[0]["theory"]
    fc = read_fc_target(tiny_target())
    assert th["pensia"] == pensia.theory_samples(fc, 0.1, 0.01) == rows[0]["theory_samples"]
    assert th["pensia_C"] == pensia.PENSIA_C and th["counting_lower"] > 0 and th["malach"] > th["pensia"]


def test_construct_takes_the_theorem_width_when_samples_is_not_given():
    t = pensia.construct(tiny_target(), per_weight_eps=0.05, seed=0, strict=False)
    fc = read_fc_target(tiny_target())
    assert t.provenance["samples_per_weight"] == pensia.theory_samples(fc, 0.05, 0.01)
    assert t.provenance["theory_C"] == pensia.PENSIA_C
    t = pensia.construct(tiny_target(), eps=0.5, seed=0, strict=False)
    assert t.provenance["per_weight_eps"] == t.provenance["theory_per_weight_eps"] == 0.5 / (2 * 2 * 6 ** 0.5)


def test_a_missing_theory_module_is_an_error_not_empty_theory_columns(monkeypatch):
    """The theory module always exists: failing to import it must raise, not fill the columns with None."""
    monkeypatch.delattr(strongticket.subsetsum, "theory", raising=False)
    monkeypatch.setitem(sys.modules, "strongticket.subsetsum.theory", None)
    with pytest.raises(ImportError):
        theory_columns(tiny_target(), 0.1)
