"""Structured tickets: the structure holds (from the masks alone), errors are the realised ones, bad input refused.

Targets cover every layer kind (Conv2d, Linear after a Flatten, Linear) with and without biases.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from strongticket.construct import structured
from strongticket.construct.conv import pair_coefficients
from strongticket.errors import InfeasibleError, InputError

H = 48
FAST = {"steps": 10, "restarts": 1}


def _init(t: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in t.parameters():
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * 0.3)
    return t.eval()


def _target(c_out=4):
    return _init(nn.Sequential(nn.Conv2d(2, c_out, 3, padding=1, bias=False), nn.ReLU(),
                               nn.Conv2d(c_out, 2, 3, bias=False)))


def _whole(bias: bool = True, c1: int = 4, c2: int = 2, hidden: int = 6, out: int = 2, seed: int = 0):
    """Conv, pool, conv, Flatten, Linear, Linear: every layer kind of a LeNet-like target."""
    return _init(nn.Sequential(nn.Conv2d(2, c1, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(c1, c2, 3, bias=bias), nn.ReLU(), nn.Flatten(),
                               nn.Linear(c2 * 2 * 2, hidden, bias=bias), nn.ReLU(), nn.Linear(hidden, out, bias=bias)),
                 seed)


def _build(granularity, group=None, **kw):
    return structured.construct(_target(), per_weight_eps=0.05, block_size=H, granularity=granularity, group=group,
                                input_shape=(2, 8, 8), strict=False, search_options=FAST, **kw)


def expected_groups(c_out: int, constant_out: bool, granularity: str, group: int | None) -> list[list[int]]:
    """Outputs that must share one subset (written out here, not taken from the module under test)."""
    total = c_out + int(constant_out)
    if granularity == "filter":
        return [list(range(total))]
    g = 1 if granularity == "kernel" else group
    out = [list(range(a, a + g)) for a in range(0, c_out, g)]
    return out + ([[c_out]] if constant_out else [])


def check_structure_from_masks(ticket, granularity: str, group: int | None) -> int:
    """Assert the structure from the masks, the random spec's shapes and the declared granularity alone.

    Returns the number of layers checked.
    """
    H_ = ticket.provenance["block_size"]
    shapes = ticket.spec.parameter_shapes()
    checked = 0
    for layer in ticket.provenance["layers"]:
        n1, n2 = layer["random_layers"]
        m = shapes[n1][0]
        c_in = shapes[n1][1]
        m1 = ticket.masks[n1].reshape(m, c_in).numpy()
        c_out_total = shapes[n2][0]
        m2 = ticket.masks[n2].reshape(c_out_total, m, -1).numpy()  # (outputs, channel jH + r, slice entries)
        # univariate first layer: channel h = j H + r reads only input j
        assert np.all(m1.sum(axis=1) <= 1)
        assert np.array_equal(m1[np.arange(m), np.arange(m) // H_], m1.any(axis=1))
        # never prunes inside a kept slice: each slice all kept or all pruned
        slice_any = m2.any(axis=2)
        assert np.array_equal(slice_any, m2.all(axis=2)), "a kept slice lost an entry"
        # a kept slice's channel has its first-layer weight, and a kept first-layer weight feeds some slice
        assert np.array_equal(slice_any.any(axis=0), m1.any(axis=1))
        constant_out = bool(layer["constant_out"])
        for outs in expected_groups(c_out_total - int(constant_out), constant_out, granularity, group):
            block = slice_any[outs]
            assert np.all(block.all(axis=0) == block.any(axis=0)), f"outputs {outs} do not share one subset"
        checked += 1
    return checked


@pytest.fixture(scope="module", params=[("kernel", None), ("group", 2), ("filter", None)])
def built(request):
    gran, g = request.param
    return gran, g, _build(gran, g)


def test_structure_holds_from_masks(built):
    gran, g, ticket = built
    assert check_structure_from_masks(ticket, gran, g) == 2


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(granularity=st.sampled_from(["kernel", "group", "filter"]), bias=st.booleans(),
       nonneg=st.booleans(), seed=st.integers(0, 2**16))
def test_structure_holds_from_masks_on_whole_targets_with_linear_layers_and_biases(granularity, bias, nonneg, seed):
    group = 2 if granularity == "group" else None
    ticket = structured.construct(_whole(bias, seed=seed), per_weight_eps=0.1, block_size=16, granularity=granularity,
                                  group=group, input_shape=(2, 8, 8), nonneg_input=nonneg, strict=False,
                                  seed=seed, search_options={"steps": 4, "restarts": 1})
    kinds = [li["kind"] for li in ticket.provenance["layers"]]
    assert kinds == ["conv2d", "conv2d", "flatten_linear", "linear"]
    assert check_structure_from_masks(ticket, granularity, group) == 4
    assert ticket.provenance["constant_input_channel"] == bias


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


@pytest.mark.parametrize("granularity, group", [("kernel", None), ("group", 2), ("filter", None)])
def test_reported_errors_are_realised_for_linear_layers_and_biases(granularity, group):
    """Every layer kind, the bias slices included: the recorded error of each slice is its instance's realised
    l_inf error (recomputed from the regenerated weights and the masks)."""
    ticket = structured.construct(_whole(True), per_weight_eps=0.05, block_size=H, granularity=granularity,
                                  group=group, input_shape=(2, 8, 8), strict=False, search_options=FAST)
    for li, (rec, layer) in enumerate(zip(structured.realised_slices(ticket), ticket.provenance["layers"])):
        e_pos = np.abs(rec["pos"] - rec["kernel"]).max(axis=2)
        e_neg = np.abs(rec["neg"] + rec["kernel"]).max(axis=2)
        c_out = layer["target_shape"][0]
        for outs in expected_groups(c_out, layer["constant_out"], granularity, group):
            np.testing.assert_allclose(ticket.arrays[f"errors.layer{li}.pos"].numpy()[outs],
                                       np.broadcast_to(e_pos[outs].max(axis=0), e_pos[outs].shape), atol=1e-5)
            neg = e_neg[outs].max(axis=0)
            if layer["negative_side"]:
                neg[-1] = 0.0  # the constant channel's u < 0 side is never built
            else:
                neg[:] = 0.0
            np.testing.assert_allclose(ticket.arrays[f"errors.layer{li}.neg"].numpy()[outs],
                                       np.broadcast_to(neg, e_neg[outs].shape), atol=1e-5)


def _augmented_forward(kernels: list[np.ndarray], x: torch.Tensor) -> torch.Tensor:
    """The ``_whole`` target with the constant channel explicit, every layer given as a slice-view kernel."""
    import torch.nn.functional as F

    k = [torch.from_numpy(np.ascontiguousarray(a)) for a in kernels]
    h = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    h = F.max_pool2d(F.relu(F.conv2d(h, k[0].reshape(*k[0].shape[:2], 3, 3), padding=1)), 2)
    h = F.relu(F.conv2d(h, k[1].reshape(*k[1].shape[:2], 3, 3))).flatten(1)
    h = F.relu(h @ k[2].reshape(k[2].shape[0], -1).T)
    return h @ k[3].reshape(k[3].shape[0], -1).T


def test_ticket_with_biases_is_the_network_of_its_realised_slices_borders_included():
    """With biases on the constant channel (bias tap inside the image, zero padding) and every layer kind, the
    ticket computes exactly the network of the slices it realises, and that network with the target's own
    slices is the target: so the ticket's only error is the per-slice error it reports."""
    target = _whole(True)
    ticket = structured.construct(target, per_weight_eps=0.05, block_size=H, granularity="group", group=2,
                                  input_shape=(2, 8, 8), nonneg_input=True, strict=False, search_options=FAST)
    rec = structured.realised_slices(ticket)
    x = torch.rand(16, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_augmented_forward([r["kernel"] for r in rec], x), target.double()(x),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(ticket.to_module(torch.float64)(x), _augmented_forward([r["pos"] for r in rec], x),
                               rtol=0, atol=1e-10)


def test_provenance_reports_dimension_and_counting_gap(built):
    gran, g, ticket = built
    layer = ticket.provenance["layers"][0]
    assert layer["dimension"] == 9 * {"kernel": 1, "group": g, "filter": 4}[gran]
    assert layer["counting_lower_bound"] == pytest.approx(layer["dimension"] * np.log2(1 / 0.05))
    assert ticket.provenance["instances_above_eps"] == sum(li["above_eps"] for li in ticket.provenance["layers"])


def test_slice_sizes_of_the_layer_kinds():
    ticket = structured.construct(_whole(False), per_weight_eps=0.1, block_size=8, input_shape=(2, 8, 8),
                                  strict=False, search_options=FAST)
    sizes = [(li["kind"], li["slice_size"], li["dimension"]) for li in ticket.provenance["layers"]]
    assert sizes == [("conv2d", 9, 9), ("conv2d", 9, 9), ("flatten_linear", 4, 4), ("linear", 1, 1)]


def test_filter_granularity_removes_whole_channels():
    ticket = _build("filter")
    m2 = ticket.masks["layers.1.weight"].numpy()
    kept = m2.any(axis=(0, 2, 3))
    assert np.array_equal(m2.all(axis=(0, 2, 3)), kept)
    assert kept.sum() < kept.size


def test_group_not_dividing_c_out_is_refused_in_one_line_naming_the_layer():
    with pytest.raises(InputError, match="group must divide") as info:
        _build("group", 3)
    assert "\n" not in str(info.value) and "layer 1" in str(info.value)
    with pytest.raises(InputError, match=r"layer 4 \(linear\).*group must divide the layer's 2 output"):
        structured.construct(_whole(True, c2=4, hidden=8), per_weight_eps=0.1, block_size=8, granularity="group",
                             group=4, input_shape=(2, 8, 8))


@pytest.mark.parametrize("gran, group, word", [("channel", None, "granularity"), ("group", None, "group"),
                                               ("group", 0, "group")])
def test_bad_granularity(gran, group, word):
    with pytest.raises(InputError, match=word) as info:
        _build(gran, group)
    assert "\n" not in str(info.value)


def test_strict_raises_on_misses_naming_the_layer():
    with pytest.raises(InfeasibleError, match="layer 1.*above eps") as info:
        structured.construct(_target(), per_weight_eps=0.001, block_size=8, input_shape=(2, 8, 8),
                             search_options={"steps": 2, "restarts": 1})
    assert "\n" not in str(info.value) and "strict=False" in str(info.value)


def test_unsupported_targets_are_refused_by_name():
    with pytest.raises(InputError, match="structured: .*BatchNorm"):
        structured.construct(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), per_weight_eps=0.1,
                             block_size=4, input_shape=(1, 4, 4))
    with pytest.raises(InputError, match="structured: .*activation"):
        structured.construct(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh()), per_weight_eps=0.1, block_size=4,
                             input_shape=(1, 4, 4))
    with pytest.raises(InputError, match="search_options"):
        structured.construct(_target(), per_weight_eps=0.1, block_size=4, input_shape=(2, 8, 8),
                             search_options={"bogus": 1})
