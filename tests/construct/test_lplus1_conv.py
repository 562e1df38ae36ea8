"""Tests of the depth-(L+1) construction on convolutional targets (Burkholz 2022, the CNN case)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from strongticket.construct import lplus1, lplus1_conv
from strongticket.errors import InputError
from strongticket.nets.activations import activation
from strongticket.nets.spec import Conv2d
from strongticket.ticket import Ticket

SHAPE = (2, 5, 5)


def _cnn(act: str, seed: int, *, padding: int = 1, bias: bool = True, scale: float = 0.4,
         weights: bool = True) -> nn.Module:
    """Conv(2->3, 3x3) act, MaxPool, Conv(3->2, 3x3) act, Flatten, Linear act, Linear: every layer kind."""
    gen = torch.Generator().manual_seed(seed)
    side = 5 + 2 * padding - 2
    side2 = side // 2 + 2 * padding - 2
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=padding, bias=bias), activation(act).module(), nn.MaxPool2d(2),
                        nn.Conv2d(3, 2, 3, padding=padding, bias=bias), activation(act).module(), nn.Flatten(),
                        nn.Linear(2 * side2 * side2, 3, bias=bias), activation(act).module(),
                        nn.Linear(3, 2, bias=bias))
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * scale)
            if name.endswith("weight") and not weights:
                p.zero_()
    return net.double().eval()


def _inputs(count: int = 600, nonneg: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    x = torch.rand((count,) + SHAPE, generator=gen, dtype=torch.float64)
    signs = torch.where(torch.rand((count // 4,) + SHAPE, generator=gen) < 0.5, -1.0, 1.0).double()
    x = torch.cat([x if nonneg else 2 * x - 1, signs.clamp(min=0) if nonneg else signs])  # box corners
    return x


def _error(ticket: Ticket, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (ticket.to_module(torch.float64)(x) - net(x)).abs()


# ----- matches the target within the certified bound, borders included --------------------------------------
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu"])
def test_cnn_ticket_is_within_its_certified_bound_on_random_inputs_with_padding_and_biases(act) -> None:
    net = _cnn(act, 1)
    tk = lplus1.construct(net, rho=16, eps=0.01, seed=2, input_shape=SHAPE, const_rho=32)
    bound = tk.provenance["certified_bound"]["bound"]
    assert float(_error(tk, net, _inputs()).max()) <= bound * (1 + 1e-9)
    assert lplus1.certified_bound(tk).bound == pytest.approx(bound, rel=1e-12)


def _hidden(ticket: Ticket, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of every random Conv2d layer (after its activation)."""
    g = ticket.to_module(torch.float64)
    x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    out = []
    with torch.no_grad():
        for layer, act in zip(g.layers, g._acts):
            x = act(layer(x))
            if isinstance(layer, nn.Conv2d):
                out.append(x)
    return out


@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_constant_channels_are_constant_at_every_position_including_the_zero_padded_border(act) -> None:
    net = _cnn(act, 3)
    tk = lplus1.construct(net, rho=16, eps=0.01, seed=1, input_shape=SHAPE, const_rho=32)
    layout, _ = lplus1.layout_of(tk)
    maps = _hidden(tk, _inputs(20))
    for k, h in enumerate(maps[1:], start=1):  # random layers 2 and 3 (the copying layer is 1x1)
        const = h[:, layout.copies(k):]
        assert const.shape[1] == layout.rho
        spread = (const - const[:, :, :1, :1]).abs().max()
        assert float(spread) <= 1e-12, (k, float(spread))


def test_bias_only_target_is_matched_at_the_border_as_in_the_interior() -> None:
    # every weight 0: the target's outputs are functions of its biases alone, the same at every position
    net = _cnn("relu", 4, weights=False, scale=0.5)
    # const_rho 48: about half the copying layer's constant neurons have u_c < 0 and output relu(u_c) = 0
    tk = lplus1.construct(net, rho=16, eps=0.01, seed=0, input_shape=SHAPE, const_rho=48)
    x = _inputs(50)
    assert float(_error(tk, net, x).max()) <= tk.provenance["certified_bound"]["bound"]
    # every hidden map of the ticket is then constant over positions, borders included (zero padding of a
    # constant channel would lower the border through any tap that reads the padding)
    for k, h in enumerate(_hidden(tk, x)[1:], start=1):
        assert float((h - h[:, :, :1, :1]).abs().max()) <= 1e-12, k


def test_sigmoid_offsets_are_cancelled_tap_by_tap_so_the_border_is_no_worse() -> None:
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Sigmoid(), nn.Flatten(), nn.Linear(75, 2)).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.5)
    tk = lplus1.construct(net, rho=16, eps=0.01, seed=3, input_shape=SHAPE, const_rho=32)
    assert lplus1.structure(tk)["constants_on_inner_tap"]
    layout, _ = lplus1.layout_of(tk)
    h = _hidden(tk, _inputs(200))[1][:, :layout.copies(1)]  # copies of target conv 1
    with torch.no_grad():
        ref = net[1](net[0](_inputs(200))).repeat_interleave(layout.rho, dim=1)
    err = (h - ref).abs().amax(dim=(0, 1))  # (5, 5): the largest error per position
    interior = float(err[1:-1, 1:-1].max())
    # an offset phi(0) sum v of about 100 (the scaled layer 2) cancelled at one tap only would leave the border
    # positions, where the other taps read padding, wrong by that much
    assert float(err.max()) <= tk.provenance["certified_bound"]["layers"][0]["max_error"]
    assert float(err.max()) <= 2 * interior


# ----- structure, every layer constructed ---------------------------------------------------------------------
def test_structural_invariants_and_every_layer_constructed() -> None:
    net = _cnn("tanh", 0)
    tk = lplus1.construct(net, rho=8, eps=0.05, seed=0, input_shape=SHAPE)
    s = lplus1.structure(tk)
    layout, _ = lplus1.layout_of(tk)
    assert s["depth"] == 5 == s["target_depth"] + 1  # 4 target layers, the classifier included
    assert s["univariate_first_layer"] and s["copies_read_own_inputs"] and s["constants_on_inner_tap"]
    assert s["widths"] == s["expected_widths"] and s["output_multiplicity"] == 1 and s["biases"] == []
    assert s["widths"][1:4] == [8 * 4, 8 * 3, 8 * 4]
    first = tk.spec.layers[0]
    assert isinstance(first, Conv2d) and first.kernel_size == 1 and tk.spec.input_constant_channel
    kinds = [type(layer).__name__ for layer in tk.spec.layers]
    assert kinds == ["Conv2d", "Conv2d", "Pool", "Conv2d", "Flatten", "Linear", "Linear"]
    assert all(m.any() for m in tk.masks.values())
    assert tk.provenance["lplus1"]["target_kind"] == "conv"


def test_pruned_target_entries_keep_their_random_weights_pruned() -> None:
    net = _cnn("relu", 2)
    with torch.no_grad():
        net[0].weight[1, 0] = 0.0  # output channel 1 reads nothing of input channel 0
    tk = lplus1.construct(net, rho=8, eps=0.05, seed=0, input_shape=SHAPE)
    layout, _ = lplus1.layout_of(tk)
    fr = layout.first_rho
    m2 = tk.masks["layers.1.weight"].numpy()
    assert not m2[8:16, :fr].any() and m2[8:16, fr:2 * fr].any()


# ----- regeneration -------------------------------------------------------------------------------------------
def test_cnn_ticket_regenerates_bit_for_bit_and_keeps_only_random_weights(tmp_path) -> None:
    net = _cnn("gelu", 5)
    tk = lplus1.construct(net, rho=8, eps=0.05, seed=9, input_shape=SHAPE)
    tk.save(tmp_path / "t", include_weights=True)
    back = Ticket.load(tmp_path / "t")
    assert back.equals(tk) and back.distribution == tk.distribution
    w = back.random_weights()
    sd = back.state_dict()
    assert all(torch.equal(sd[n][back.masks[n]], w[n][back.masks[n]]) for n in sd)
    assert all(not sd[n][~back.masks[n]].any() for n in sd)
    x = _inputs(10)
    assert torch.equal(tk.to_module(torch.float64)(x), back.to_module(torch.float64)(x))
    again = lplus1.construct(net, rho=8, eps=0.05, seed=9, input_shape=SHAPE)
    assert all(torch.equal(again.masks[n], tk.masks[n]) for n in tk.masks)
    assert lplus1.certified_bound(back).bound == tk.provenance["certified_bound"]["bound"]


# ----- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target,needle", [
    (nn.Sequential(nn.Conv2d(2, 2, 3), nn.MaxPool2d(1), nn.ReLU(), nn.Flatten(), nn.Linear(18, 1)),
     "after Pool layer"),
    (nn.Sequential(nn.Conv2d(2, 2, 3, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(98, 1)), "padding"),
    (nn.Sequential(nn.MaxPool2d(1), nn.Conv2d(2, 2, 3), nn.Flatten(), nn.Linear(18, 1)), "must start with Conv2d"),
])
def test_bad_cnn_target_is_one_line(target, needle) -> None:
    with pytest.raises(InputError) as info:
        lplus1.construct(target, rho=8, eps=0.05, input_shape=SHAPE)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_is_conv_target() -> None:
    assert lplus1_conv.is_conv_target(_cnn("relu", 0), SHAPE)
    assert not lplus1_conv.is_conv_target(nn.Sequential(nn.Linear(3, 2)))
    assert np.array_equal(lplus1_conv.column_map(
        lplus1_conv.read_target(_cnn("relu", 0), SHAPE).stages[0], lplus1.Layout((2, 3, 2, 3, 2), 4, 8, 8), 1
    ).constants[:, 0], 16 * 9 + np.arange(9))  # constant channel 16, every tap
