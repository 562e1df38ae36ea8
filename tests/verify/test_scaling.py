"""Width scaling: the bisection finds the smallest all-seeds success and reports the block size with it."""

from __future__ import annotations

import sys

import numpy as np
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


# ------------------------------------------------------------------------------------------------ structured
from strongticket.construct import structured  # noqa: E402
from strongticket.errors import InputError  # noqa: E402
from strongticket.verify.scaling import (  # noqa: E402
    fit_exponent,
    structured_min_width,
    structured_scaling,
    synthetic_layer,
    theorem_shape,
)

QUICK_SEARCH = {"steps": 10, "restarts": 1}


def _fraction_within(dimension, eps, width, targets, seed=0):
    """Recomputed from the construction's instances: the fraction of targets whose realised error is <= eps."""
    kernel, u, v = synthetic_layer(dimension, targets, width, seed)
    out = structured.solve_pair(kernel, u, v, [np.arange(1)], eps, negative=np.zeros(targets, dtype=bool),
                                seed=seed, options=QUICK_SEARCH)
    a_pos = np.einsum("jr,jrd->jd", np.where(out["keep"][0], np.abs(u) * (u > 0), 0.0), v[0].astype(np.float64))
    return float(np.mean(np.abs(a_pos - kernel[0]).max(axis=1) <= eps))


def test_structured_min_width_is_a_realised_success_whose_predecessor_failed():
    r = structured_min_width(4, 0.5, targets=6, quantile=0.8, width_max=256, search_options=QUICK_SEARCH)
    assert r.width is not None and r.fraction_at_width >= 0.8
    assert r.counting_width == pytest.approx(2 * 4 * 1.0)
    # the width's instances, rebuilt and solved again, reach eps (prefix of the widest draw = the same draw)
    assert _fraction_within(4, 0.5, r.width, 6) == r.fraction_at_width
    failed = [w for w, frac, _ in r.tried if frac < 0.8]
    assert all(w < r.width for w in failed)
    assert r.width <= 8 or max(failed) >= r.width / 1.25 - 1, "bisection stopped short of its precision"


def test_structured_width_grows_with_dimension_and_misses_are_reported():
    res = structured_scaling((1, 9, 200), (0.5,), targets=4, width_max=256, search_options=QUICK_SEARCH)
    rows = {r["dimension"]: r for r in res["rows"]}
    assert rows[9]["width"] > rows[1]["width"]
    assert rows[200]["width"] is None and rows[200]["fraction_at_width"] is None  # unreachable at this width
    assert res["fits"][0]["dims"] == [1, 9] and res["fits"][0]["exponent"] > 0
    assert res["theorem_exponent"] == 3 and rows[9]["theorem_shape"] == pytest.approx(theorem_shape(9, 0.5))


def test_fit_exponent_recovers_a_power_law():
    dims = [4, 9, 18, 36]
    assert fit_exponent(dims, [3 * d ** 2 for d in dims]) == pytest.approx(2.0)
    assert fit_exponent(dims, [5 * d for d in dims]) == pytest.approx(1.0)
    assert fit_exponent([9], [100]) is None


@pytest.mark.parametrize("kwargs, match", [({"eps_values": (2.0,)}, "--eps"), ({"dims": (0,)}, "--dims"),
                                           ({"quantile": 0.0}, "--quantile"), ({"width_max": 1}, "--max-width"),
                                           ({"targets": 0}, "--targets")])
def test_structured_scaling_refuses_bad_options_in_one_line(kwargs, match):
    with pytest.raises(InputError, match=match) as info:
        structured_scaling(**{"dims": (4,), "eps_values": (0.5,), **kwargs})
    assert "\n" not in str(info.value)
