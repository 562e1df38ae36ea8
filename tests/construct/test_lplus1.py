"""Tests of the depth-(L+1) construction (Burkholz 2022): identities, structure, certified bound, regeneration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from strongticket.construct import lplus1, lplus1_parts
from strongticket.errors import InputError
from strongticket.nets.activations import LEAKY_SLOPE, REGISTRY, activation
from strongticket.nets.distributions import WeightDistribution
from strongticket.ticket import Ticket

#: Registered activations the copying layer supports (every entry but none today: asserted below).
SUPPORTED = [name for name, a in REGISTRY.items()
             if (a.positively_homogeneous and a.split and a.remainder is None)
             or (a.dphi0 not in (None, 0.0) and a.remainder is not None)]


def _mlp(widths: list[int], act: str, seed: int, scale: float = 0.5, bias: bool = True) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        lin = nn.Linear(a, b, bias=bias)
        with torch.no_grad():
            lin.weight.copy_((torch.rand(b, a, generator=gen) * 2 - 1) * scale)
            if bias:
                lin.bias.copy_((torch.rand(b, generator=gen) * 2 - 1) * scale / 2)
        mods.append(lin)
        if i < len(widths) - 2:
            mods.append(activation(act).module())
    return nn.Sequential(*mods).double()


def _measured(ticket: Ticket, target: nn.Module, d: int, nonneg: bool = False, count: int = 4000) -> float:
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(count, d, generator=gen, dtype=torch.float64)
    if not nonneg:
        x = 2 * x - 1
    corners = torch.tensor(np.array(np.meshgrid(*[[-1.0, 1.0]] * d)).reshape(d, -1).T) if d <= 8 else x[:0]
    if nonneg:
        corners = corners.clamp(min=0)
    x = torch.cat([x, corners])
    g = ticket.to_module(dtype=torch.float64)
    with torch.no_grad():
        return float((g(x) - target(x)).abs().max())


# ----- activation identities the first layer rests on ----------------------------------------------------------
@pytest.mark.parametrize("name,split", [("relu", 1.0), ("gelu", 1.0), ("silu", 1.0), ("softplus", 1.0),
                                        ("leaky_relu", 1.0 + LEAKY_SLOPE)])
@given(x=st.floats(-30, 30, allow_nan=False))
@settings(max_examples=60, deadline=None)
def test_phi_x_minus_phi_minus_x_is_split_times_x(name: str, split: float, x: float) -> None:
    act = activation(name)
    # torch's softplus is linear beyond its threshold (20): the identity holds exactly only up to it
    x = max(-20.0, min(20.0, x)) if name == "softplus" else x
    assert act.split == pytest.approx(split)
    y = lplus1_parts.phi64(act, np.array([x, -x]))
    assert y[0] - y[1] == pytest.approx(split * x, abs=1e-12, rel=1e-12)


def test_every_registered_activation_but_none_is_supported_by_the_copying_layer() -> None:
    assert set(SUPPORTED) == set(REGISTRY)
    assert {lplus1.first_layer_mode(activation(n)) for n in ("relu", "leaky_relu")} == {"split"}
    assert {lplus1.first_layer_mode(activation(n)) for n in ("tanh", "sigmoid", "gelu", "silu", "elu", "softplus")} \
        == {"linear"}


# ----- structure -----------------------------------------------------------------------------------------------
@given(depth=st.integers(1, 3), widths=st.lists(st.integers(2, 4), min_size=4, max_size=4),
       act=st.sampled_from(["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]), seed=st.integers(0, 10),
       prune=st.booleans())
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_structural_invariants_hold_on_random_targets_of_random_depth(depth, widths, act, seed, prune) -> None:
    net = _mlp(widths[:depth + 1], act, seed)
    if prune:  # a sparse target: every other weight exactly zero
        with torch.no_grad():
            for m in net:
                if isinstance(m, nn.Linear):
                    m.weight.view(-1)[::2] = 0.0
    tk = lplus1.construct(net, rho=6, eps=0.05, seed=seed)
    s = lplus1.structure(tk)
    assert s["depth"] == depth + 1 == s["target_depth"] + 1
    assert s["univariate_first_layer"]
    assert s["widths"] == s["expected_widths"]
    assert s["widths"][-1] == widths[depth] and s["output_multiplicity"] == 1
    assert s["biases"] == []
    assert s["copies_read_own_inputs"]
    rho, fr = 6, tk.provenance["lplus1"]["first_rho"]
    lp = tk.provenance["lplus1"]
    assert s["widths"][0] == fr * widths[0] + lp["const_rho"] * lp["const_groups"]
    assert all(s["widths"][k] == rho * (widths[k] + 1) for k in range(1, depth))
    # the random spec carries the target's activation per layer (copying layer: the first one)
    acts = [layer.activation for layer in tk.spec.layers if hasattr(layer, "in_features")]
    target_acts = [act] * (depth - 1) + ["identity"]
    assert acts == [target_acts[0]] + target_acts


def test_pruned_target_weights_keep_their_random_weights_pruned() -> None:
    net = _mlp([4, 3, 2], "relu", 0)
    with torch.no_grad():
        net[0].weight[1, 2] = 0.0
        net[2].weight[0, :] = 0.0
    tk = lplus1.construct(net, rho=8, eps=0.02, seed=3)
    lay, _ = lplus1.layout_of(tk)
    m2 = tk.masks["layers.1.weight"].numpy()
    fr = lay.first_rho
    assert not m2[1 * 8:2 * 8, 2 * fr:3 * fr].any()  # copies of neuron 1 read nothing of input 2
    m3 = tk.masks["layers.2.weight"].numpy()
    assert not m3[0, :3 * 8].any()  # output 0 reads no copy (only its bias from the constant neurons)


# ----- certified bound -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("first_scale", ["theory", None])
@pytest.mark.parametrize("widths,scale", [([3, 4, 3, 2], 0.5), ([1, 1, 1], 0.9)])
@pytest.mark.parametrize("name", SUPPORTED)
def test_measured_error_is_at_most_the_certified_bound_for_every_registered_activation(name, widths, scale,
                                                                                      first_scale) -> None:
    net = _mlp(widths, name, 1, scale=scale)
    # first_scale=None: the linear regime uses the law's full scale, so the Taylor remainder dominates the bound
    # (on the one-neuron target, dropping it leaves a bound below the measured error)
    tk = lplus1.construct(net, rho=10, eps=0.01, seed=2, const_rho=30, first_scale=first_scale)
    bound = tk.provenance["certified_bound"]["bound"]
    measured = _measured(tk, net, widths[0])
    assert measured <= bound * (1 + 1e-9) + 1e-12, (measured, bound)
    assert lplus1.certified_bound(tk).bound == pytest.approx(bound, rel=1e-12)


def test_certified_bound_holds_on_non_negative_inputs_with_one_sided_first_layer() -> None:
    net = _mlp([5, 4, 2], "relu", 4)
    tk = lplus1.construct(net, rho=10, eps=0.02, seed=0, nonneg_input=True)
    assert tk.provenance["layers"][0]["weights"]["instances"] == 4 * 10 * 5  # + side only
    assert _measured(tk, net, 5, nonneg=True) <= tk.provenance["certified_bound"]["bound"] * (1 + 1e-9)


def test_leaky_relu_first_layer_is_rescaled_by_one_over_one_plus_alpha() -> None:
    # large weights and a small eps make the 1 % rescale visible against the per-weight tolerance
    net = _mlp([3, 2, 1], "leaky_relu", 0, scale=0.9)
    eps = 0.002
    tk = lplus1.construct(net, rho=12, first_rho=48, const_rho=48, eps=eps, seed=5)
    rec = tk.provenance["layers"][0]
    assert rec["weights"]["above_eps"] == 0
    # per input |e+ - alpha e-| <= (1 + alpha) eps, plus the bias instance's own error
    limit = 3 * (1 + LEAKY_SLOPE) * eps + rec["biases"]["max_error"]
    assert tk.provenance["certified_bound"]["layers"][0]["max_pre_error"] <= limit


def test_smooth_first_layer_records_the_taylor_remainder() -> None:
    net = _mlp([3, 3, 2], "tanh", 0)
    small = lplus1.construct(net, rho=10, eps=0.02, seed=1, distribution=WeightDistribution.uniform(-0.2, 0.2),
                             first_rho=20, const_rho=20, first_scale=None)
    large = lplus1.construct(net, rho=10, eps=0.02, seed=1, first_scale=None)
    r_small = small.provenance["certified_bound"]["layers"][0]["remainder"]
    r_large = large.provenance["certified_bound"]["layers"][0]["remainder"]
    assert 0 < r_small < r_large


# ----- per-layer weight scale of the linear regime ---------------------------------------------------------------
LINEAR = [n for n in SUPPORTED if lplus1.first_layer_mode(activation(n)) == "linear"]


@pytest.mark.parametrize("name", LINEAR)
@pytest.mark.parametrize("eps,radius,bound", [(0.01, 1.0, 1.0), (0.05, 2.0, 0.5), (0.3, 1.0, 1.0)])
def test_first_layer_scale_is_eps_phi_prime_over_c_capped_at_one_and_layer_two_compensates(name, eps, radius,
                                                                                           bound) -> None:
    act = activation(name)
    lam1, lam2 = lplus1.first_layer_scales(act, eps, radius, bound)
    if act.remainder == 0:  # the identity is exact: no scale
        assert (lam1, lam2) == (1.0, 1.0)
        return
    assert lam1 == pytest.approx(min(1.0, eps * act.dphi0 / (act.remainder * bound ** 3 * radius ** 2)), rel=1e-15)
    assert lam1 * lam2 * act.dphi0 == pytest.approx(1.0, rel=1e-15)  # phi'(0) v u = v~ u~: ReLU's products
    if lam1 < 1:  # a kept neuron's Taylor remainder |v| c u^2 x^2 is then exactly eps at the corners
        worst = (lam2 * bound) * act.remainder * (lam1 * bound) ** 2 * radius ** 2
        assert worst == pytest.approx(eps, rel=1e-12)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_exact_split_first_layer_gets_no_tensor_scale(name) -> None:
    tk = lplus1.construct(_mlp([3, 3, 2], name, 0), rho=8, eps=0.02, seed=1)
    assert tk.distribution.tensor_scales == ()
    assert "tensor_scales" not in tk.distribution.to_dict()  # ticket.json as before scales existed
    assert tk.provenance["lplus1"]["first_scale"]["rule"] == "split"


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "gelu"])
def test_ticket_records_the_theory_scales_and_its_weights_carry_them(name) -> None:
    eps = 0.02
    tk = lplus1.construct(_mlp([3, 3, 2], name, 0), rho=8, eps=eps, seed=1)
    lam1, lam2 = lplus1.first_layer_scales(activation(name), eps)
    assert dict(tk.distribution.tensor_scales) == {"layers.0.weight": lam1, "layers.1.weight": lam2}
    rec = tk.provenance["lplus1"]["first_scale"]
    assert rec["rule"] == "theory" and (rec["lambda1"], rec["lambda2"]) == (lam1, lam2)
    w = tk.random_weights()
    plain = WeightDistribution.uniform().generate(tk.spec, tk.seed)
    for n, lam in (("layers.0.weight", lam1), ("layers.1.weight", lam2)):  # float32(float64 draw * lambda)
        assert float(w[n].abs().max()) <= lam * (1 + 1e-6)
        torch.testing.assert_close(w[n].double(), plain[n].double() * lam, rtol=1e-7, atol=0)
    assert torch.equal(w["layers.2.weight"], plain["layers.2.weight"])  # later layers: the law as drawn


@pytest.mark.parametrize("name", ["sigmoid", "gelu"])
def test_theory_scales_shrink_the_bound_and_the_error_of_one_law(name) -> None:
    """The one-law ticket (first_scale=None) is the accuracy loss this scale repairs."""
    net = _mlp([8, 6, 2], name, 3)
    scaled = lplus1.construct(net, rho=12, eps=0.01, seed=4, first_rho=24)
    one_law = lplus1.construct(net, rho=12, eps=0.01, seed=4, first_rho=24, first_scale=None)
    b_s, b_1 = (t.provenance["certified_bound"]["bound"] for t in (scaled, one_law))
    assert b_s < b_1 / 2
    assert _measured(scaled, net, 8) < _measured(one_law, net, 8)


def test_sigmoid_constant_offsets_are_cancelled_by_the_reserve_groups() -> None:
    # phi(0) sum v of 40 inputs is far beyond one group's reach: with one group many bias instances miss
    net = _mlp([40, 20, 2], "sigmoid", 1)
    default = lplus1.construct(net, rho=10, eps=0.01, seed=2, const_rho=30)
    single = lplus1.construct(net, rho=10, eps=0.01, seed=2, const_rho=30, const_groups=1)
    groups = default.provenance["lplus1"]["const_groups"]
    assert groups == lplus1.constant_groups(activation("sigmoid"), "linear", 40, 30) > 1
    assert default.provenance["layers"][0]["biases"]["above_eps"] == 0
    assert single.provenance["layers"][0]["biases"]["above_eps"] > 0
    s = lplus1.structure(default)
    assert s["widths"][0] == 40 * 10 + 30 * groups and s["widths"] == s["expected_widths"]
    assert s["univariate_first_layer"] and s["copies_read_own_inputs"]
    assert _measured(default, net, 40) <= default.provenance["certified_bound"]["bound"] * (1 + 1e-9)


def test_constant_groups_is_one_unless_phi_at_zero_is_nonzero() -> None:
    assert lplus1.constant_groups(activation("tanh"), "linear", 784, 30) == 1
    assert lplus1.constant_groups(activation("gelu"), "linear", 784, 30) == 1
    assert lplus1.constant_groups(activation("relu"), "split", 784, 30) == 1
    z, s = lplus1_parts.OFFSET_SIGMAS, lplus1_parts.OFFSET_SUBSET_SIZE
    assert lplus1.constant_groups(activation("sigmoid"), "linear", 784, 30) == \
        1 + math.ceil(z * math.sqrt(784 * s / 3) / (30 / 4))


def test_a_given_first_scale_is_used_and_none_keeps_one_law() -> None:
    net = _mlp([3, 3, 2], "gelu", 0)
    given_ = lplus1.construct(net, rho=8, eps=0.02, seed=1, first_scale=0.25)
    assert dict(given_.distribution.tensor_scales) == {"layers.0.weight": 0.25, "layers.1.weight": 8.0}
    assert given_.provenance["lplus1"]["first_scale"]["rule"] == "given"
    none = lplus1.construct(net, rho=8, eps=0.02, seed=1, first_scale=None)
    assert none.distribution.tensor_scales == () and none.provenance["lplus1"]["first_scale"]["rule"] == "none"


def test_ticket_provenance_from_before_constant_groups_reads_one_group() -> None:
    tk = lplus1.construct(_mlp([3, 3, 2], "relu", 0), rho=8, eps=0.02, seed=1)
    info = dict(tk.provenance["lplus1"])
    del info["const_groups"]
    old = Ticket(tk.spec, tk.distribution, tk.seed, tk.masks, {**tk.provenance, "lplus1": info}, tk.arrays)
    layout, _ = lplus1.layout_of(old)
    assert layout.const_groups == 1 and layout.rows(0) == tk.spec.parameter_shapes()["layers.0.weight"][0]
    assert lplus1.certified_bound(old).bound == tk.provenance["certified_bound"]["bound"]


# ----- regeneration --------------------------------------------------------------------------------------------
def test_ticket_regenerates_bit_for_bit_from_a_saved_directory(tmp_path) -> None:
    net = _mlp([4, 3, 2], "gelu", 2)
    tk = lplus1.construct(net, rho=8, eps=0.03, seed=11)
    assert tk.distribution.tensor_scales  # GELU: the copying layer and layer 2 carry their scales
    tk.save(tmp_path / "t", include_weights=True)  # load checks the stored weights against the regenerated
    back = Ticket.load(tmp_path / "t")
    assert back.equals(tk) and back.distribution == tk.distribution
    w1, w2 = tk.random_weights(), back.random_weights()
    assert all(torch.equal(w1[n], w2[n]) for n in w1)
    sd = back.state_dict()
    assert all(torch.equal(sd[n][back.masks[n]], w1[n][back.masks[n]]) for n in sd)  # kept = the random draw
    x = torch.rand(50, 4, dtype=torch.float64)
    assert torch.equal(tk.to_module(torch.float64)(x), back.to_module(torch.float64)(x))
    assert [type(a) for a in back.spec.layers] == [type(a) for a in tk.spec.layers]
    assert lplus1.certified_bound(back).bound == tk.provenance["certified_bound"]["bound"]
    again = lplus1.construct(net, rho=8, eps=0.03, seed=11)
    assert all(torch.equal(again.masks[n], tk.masks[n]) for n in tk.masks)


# ----- bad input -----------------------------------------------------------------------------------------------
class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.a(x)) + x


@pytest.mark.parametrize("target,options,needle", [
    (nn.Sequential(nn.Linear(3, 2), nn.Hardtanh(), nn.Linear(2, 1)), {}, "activations:"),
    (_Residual(), {}, "unsupported"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 1)),  # a CNN: the same checks
     {"input_shape": (1, 3, 3), "rho": 3, "eps": 0.01}, "counting bound rho >= 7"),
    (nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)), {"rho": 3, "eps": 0.01}, "counting bound rho >= 7"),
    (nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)), {"eps": 2.0}, "eps must be in (0, 1)"),
    (nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)), {"objective": "x"}, "objective"),
    (nn.Sequential(nn.Linear(3, 2), nn.Sigmoid(), nn.Linear(2, 1)), {"const_rho": 80}, "const_rho = 80"),
    (nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)), {"first_scale": -1.0}, "first_scale must be"),
    (nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)), {"first_scale": "big"}, "first_scale must be"),
    (nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)), {"const_groups": 0}, "const_groups"),
    (nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)),
     {"distribution": WeightDistribution.uniform().with_tensor_scales({"layers.0.weight": 0.5})},
     "pass first_scale=None"),
])
def test_bad_input_is_one_line(target, options, needle) -> None:
    with pytest.raises(InputError) as info:
        lplus1.construct(target, **options)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_rho_too_small_names_what_the_theory_asks() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with pytest.raises(InputError, match=r"theorem's rho for delta = 0.01 is \d+"):
        lplus1.construct(net, rho=3, eps=0.01)


def test_default_rho_is_the_theorem_form() -> None:
    assert lplus1.theory_rho(266_610, 0.01, 0.01) == 15
    assert lplus1.theory_rho(1000, 0.01, 0.01) == math.ceil(lplus1.LPLUS1_C * math.log2(1e5))


# ----- the reference code's first-layer choices (reference_first_layer) -------------------------------------------
def _copy_part(ticket: Ticket, k: int) -> np.ndarray:
    """Random layer ``k + 1``'s mask over the previous layer's copies (constant columns dropped)."""
    layout, _ = lplus1.layout_of(ticket)
    return ticket.masks[lplus1.layer_names(ticket.spec)[k]].numpy()[:, :layout.copies(k - 1)]


def test_reference_first_layer_leaves_a_relu_ticket_on_signed_inputs_unchanged() -> None:
    net = _mlp([4, 5, 3, 2], "relu", 0)
    ours = lplus1.construct(net, rho=8, eps=0.02, seed=1)
    ref = lplus1.construct(net, rho=8, eps=0.02, seed=1, reference_first_layer=True)
    assert ours.distribution == ref.distribution
    assert all(torch.equal(ours.masks[n], ref.masks[n]) for n in ours.masks)
    assert ref.provenance["lplus1"]["reference_first_layer"] is True


def _first_coefficients(ticket: Ticket) -> tuple[np.ndarray, np.ndarray]:
    """``(A+, A-)``: random layer 2's realised coefficients on phi(x) and phi(-x), per copy row and input."""
    layout, _ = lplus1.layout_of(ticket)
    names = lplus1.layer_names(ticket.spec)
    w = ticket.random_weights()
    first = lplus1_parts.first_view(layout, activation("leaky_relu"), w[names[0]].numpy(), ticket.masks[names[0]].numpy())
    n0, fr = layout.widths[0], layout.first_rho
    v = np.where(ticket.masks[names[1]].numpy(), w[names[1]].numpy(), 0.0)[:layout.copies(1), :n0 * fr]
    blk = v.reshape(-1, n0, fr).astype(np.float64)
    return ((blk * np.where(first.u > 0, first.u, 0.0)).sum(axis=2),
            (blk * np.where(first.u < 0, -first.u, 0.0)).sum(axis=2))


def test_reference_first_layer_omits_exactly_the_leaky_relu_rescale() -> None:
    net = _mlp([3, 4, 2], "leaky_relu", 0, scale=0.9)
    eps, rho = 0.002, 12
    ours = lplus1.construct(net, rho=rho, first_rho=48, const_rho=48, eps=eps, seed=5)
    ref = lplus1.construct(net, rho=rho, first_rho=48, const_rho=48, eps=eps, seed=5, reference_first_layer=True)
    # only the copies of random layer 2 differ: same law, same constant neurons, same later layers
    assert ours.distribution == ref.distribution
    n1 = lplus1.layer_names(ours.spec)[1]
    assert torch.equal(ours.masks[n1][rho * 4:], ref.masks[n1][rho * 4:])
    assert not torch.equal(ours.masks[n1][:rho * 4], ref.masks[n1][:rho * 4])
    assert torch.equal(ours.masks["layers.2.weight"], ref.masks["layers.2.weight"])
    # the sides target w / (1 + a) and -w / (1 + a) (ours) or +-w (the reference): A+ phi(x) + A- phi(-x) with
    # phi(x) - phi(-x) = (1 + a) x turns these
    # into w x and (1 + a) w x
    w = np.repeat(net[0].weight.detach().numpy(), rho, axis=0)
    a = LEAKY_SLOPE
    for ticket, scale in ((ours, 1 / (1 + a)), (ref, 1.0)):
        pos, neg = _first_coefficients(ticket)
        assert np.abs(pos - scale * w).max() <= eps and np.abs(neg + scale * w).max() <= eps
    assert np.abs(w).max() * a / (1 + a) > 2 * eps  # so the two cannot both hold: the rescale is visible


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_reference_first_layer_drops_the_linearisation_and_only_that(name) -> None:
    net = _mlp([5, 4, 3, 2], name, 1)
    ours = lplus1.construct(net, rho=10, eps=0.01, seed=2)
    ref = lplus1.construct(net, rho=10, eps=0.01, seed=2, reference_first_layer=True)
    assert ours.distribution.tensor_scales and not ref.distribution.tensor_scales  # one law, no lambda
    assert ref.provenance["lplus1"]["const_groups"] == 1
    # later layers' subset sums over the copies are the same instances on the same draws
    assert np.array_equal(_copy_part(ours, 2), _copy_part(ref, 2))
    assert np.array_equal(_copy_part(ours, 3), _copy_part(ref, 3))
    # layer 2: ours solves phi'(0) (lambda_2 v)(lambda_1 u) = v u against w, the reference v u against w on the
    # unscaled law: the same instances for tanh (phi'(0) = 1; the scale only shrinks the remainder), not for
    # sigmoid (phi'(0) = 1/4: the reference's products are 4 times too large)
    same_first = np.array_equal(_copy_part(ours, 1), _copy_part(ref, 1))
    assert same_first == (activation(name).dphi0 == 1.0)
    layout, _ = lplus1.layout_of(ref)
    # the reference assumes the copying layer is the identity: its layer-2 products v u sum to w itself
    wr = ref.random_weights()
    first = lplus1_parts.first_view(layout, activation(name), wr["layers.0.weight"].numpy(),
                              ref.masks["layers.0.weight"].numpy())
    v = np.where(ref.masks["layers.1.weight"].numpy(), wr["layers.1.weight"].numpy(), 0.0)
    blk = v[:layout.copies(1), :5 * layout.first_rho].reshape(-1, 5, layout.first_rho).astype(np.float64)
    w = np.repeat(net[0].weight.detach().numpy(), 10, axis=0)
    assert np.abs((blk * first.u[None]).sum(axis=2) - w).max() <= ref.provenance["layers"][0]["weights"]["max_error"]
    m1 = ref.masks["layers.0.weight"].numpy()[layout.first_rho * 5:]
    if activation(name).phi0 != 0:  # sigmoid: the reference's constant neurons have no input (its SiG)
        assert not m1.any()
    else:
        assert m1.any()
    b_ours, b_ref = (t.provenance["certified_bound"]["bound"] for t in (ours, ref))
    assert b_ours < b_ref
    assert _measured(ref, net, 5) <= b_ref * (1 + 1e-9)
