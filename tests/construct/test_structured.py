"""Structured tickets: the structure holds (from the masks alone), errors are the realised ones, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from strongticket.construct import structured
from strongticket.construct.conv import pair_coefficients
from strongticket.errors import InfeasibleError, InputError

H = 48


def _target(c_out=4):
    torch.manual_seed(0)
    t = nn.Sequential(nn.Conv2d(2, c_out, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(c_out, 2, 3, bias=False))
    with torch.no_grad():
        for m in t:
            if isinstance(m, nn.Conv2d):
                m.weight.uniform_(-0.3, 0.3)
    return t


def _build(granularity, group=None, **kw):
    return structured.construct(_target(), per_weight_eps=0.05, block_size=H, granularity=granularity, group=group,
                                input_shape=(2, 8, 8), strict=False, search_options={"steps": 10, "restarts": 1}, **kw)


@pytest.fixture(scope="module", params=[("kernel", None), ("group", 2), ("filter", None)])
def built(request):
    gran, g = request.param
    return gran, g, _build(gran, g)


def test_structure_holds_from_masks(built):
    gran, g, ticket = built
    for n1, n2 in [(f"layers.{i}.weight", f"layers.{i + 1}.weight") for i in (0, 2)]:
        m1 = ticket.masks[n1][:, :, 0, 0].numpy()
        m2 = ticket.masks[n2].numpy()
        c_out, m = m2.shape[:2]
        c_in = m1.shape[1]
        # univariate 1x1: channel h = j H + r reads only input j
        assert np.all(m1.sum(axis=1) <= 1)
        assert np.all(m1[np.arange(m), np.arange(m) // H] == m1.any(axis=1))
        # never prunes inside a kept slice: each kxk slice all kept or all pruned
        slice_any, slice_all = m2.any(axis=(2, 3)), m2.all(axis=(2, 3))
        assert np.array_equal(slice_any, slice_all)
        # a kept slice's channel has its 1x1 weight
        assert np.all(~slice_any | m1.any(axis=1)[None, :])
        size = {"kernel": 1, "group": g, "filter": c_out}[gran]
        grouped = slice_any.reshape(c_out // size, size, m)
        assert np.all(grouped.all(axis=1) == grouped.any(axis=1)), "outputs of a group share one subset"
        del c_in


def _group_max(e, size):
    """Each slice's error replaced by the largest in its output group (the error of its instance)."""
    c_out, c_in = e.shape
    return np.repeat(e.reshape(c_out // size, size, c_in).max(axis=1), size, axis=0)


def test_reported_errors_are_realised(built):
    gran, g, ticket = built
    w = ticket.random_weights()
    target = _target()
    for li, (i, conv) in enumerate([(0, target[0]), (2, target[2])]):
        n1, n2 = f"layers.{i}.weight", f"layers.{i + 1}.weight"
        a_pos, a_neg = pair_coefficients(w[n1].numpy(), ticket.masks[n1].numpy(), w[n2].numpy(),
                                         ticket.masks[n2].numpy())
        k = conv.weight.detach().double().numpy()
        size = {"kernel": 1, "group": g, "filter": k.shape[0]}[gran]
        np.testing.assert_allclose(_group_max(np.abs(a_pos - k).max(axis=(2, 3)), size),
                                   ticket.arrays[f"errors.layer{li}.pos"].numpy(), atol=1e-5)
        if ticket.provenance["layers"][li]["negative_side"]:
            np.testing.assert_allclose(_group_max(np.abs(a_neg + k).max(axis=(2, 3)), size),
                                       ticket.arrays[f"errors.layer{li}.neg"].numpy(), atol=1e-5)


def test_provenance_reports_dimension_and_counting_gap(built):
    gran, g, ticket = built
    layer = ticket.provenance["layers"][0]
    assert layer["dimension"] == 9 * {"kernel": 1, "group": g, "filter": 4}[gran]
    assert layer["counting_lower_bound"] == pytest.approx(layer["dimension"] * np.log2(1 / 0.05))
    assert ticket.provenance["instances_above_eps"] == sum(li["above_eps"] for li in ticket.provenance["layers"])


def test_filter_granularity_removes_whole_channels():
    ticket = _build("filter")
    m2 = ticket.masks["layers.1.weight"].numpy()
    kept = m2.any(axis=(0, 2, 3))
    assert np.array_equal(m2.all(axis=(0, 2, 3)), kept)
    assert kept.sum() < kept.size


def test_group_not_dividing_c_out_is_refused():
    with pytest.raises(InputError, match="group must divide"):
        _build("group", 3)


@pytest.mark.parametrize("gran, group, word", [("channel", None, "granularity"), ("group", None, "group")])
def test_bad_granularity(gran, group, word):
    with pytest.raises(InputError, match=word):
        _build(gran, group)


def test_strict_raises_on_misses_naming_the_layer():
    with pytest.raises(InfeasibleError, match="layer 1.*above eps"):
        structured.construct(_target(), per_weight_eps=0.001, block_size=8, input_shape=(2, 8, 8),
                             search_options={"steps": 2, "restarts": 1})


def test_linear_and_bias_are_refused():
    with pytest.raises(InputError, match="Linear"):
        structured.construct(nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(), nn.Linear(8, 2, bias=False)),
                             per_weight_eps=0.1, block_size=4, input_shape=(1, 4, 4))
    with pytest.raises(InputError, match="bias"):
        structured.construct(nn.Sequential(nn.Conv2d(1, 2, 3)), per_weight_eps=0.1, block_size=4,
                             input_shape=(1, 4, 4))
