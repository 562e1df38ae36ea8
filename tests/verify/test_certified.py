"""The certified bound dominates every measured error: on constructed tickets of random targets, and (property
tests) on arbitrary univariate prunings of random 2L networks, block by block, through the block coefficients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from strongticket.construct import malach, pensia
from strongticket.construct.blocks import block_coefficients, block_parameter_names, random_spec, read_fc_target
from strongticket.nets.distributions import WeightDistribution
from strongticket.ticket import Ticket
from strongticket.verify import adversarial_error, certified_bound, empirical_error


def random_target(seed: int, widths=(4, 5, 3), bias: bool = False) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        lin = nn.Linear(a, b, bias=bias)
        with torch.no_grad():
            lin.weight.copy_((torch.rand(b, a, generator=g) * 2 - 1) * 0.6)
            if bias:
                lin.bias.copy_((torch.rand(b, generator=g) * 2 - 1) * 0.3)
        layers += [lin, nn.ReLU()] if i < len(widths) - 2 else [lin]
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize("seed, bias, build", [(0, False, "pensia"), (1, True, "pensia"), (2, False, "malach"),
                                                (3, False, "pensia")])
def test_certified_bound_dominates_sampled_and_adversarial_errors(seed, bias, build):
    target = random_target(seed, bias=bias)
    make = pensia.construct if build == "pensia" else malach.construct
    t = make(target, per_weight_eps=0.05, samples=6, seed=seed, strict=False)
    bound = certified_bound(t).bound
    sphere = empirical_error(t, domain="sphere", count=400, seed=seed).sup
    ball = empirical_error(t, domain="ball", count=400, seed=seed).sup
    adv = adversarial_error(t, restarts=2, steps=25, batch=8, seed=seed).sup
    assert bound >= max(sphere, ball, adv)
    assert adv > 0


def test_nonneg_bound_dominates_errors_on_nonneg_inputs():
    target = random_target(5)
    t = pensia.construct(target, per_weight_eps=0.05, samples=6, seed=5, strict=False, nonneg_input=True)
    x = torch.rand(500, 4, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1.0)
    with torch.no_grad():
        err = (t.to_module(torch.float64)(x) - target.double()(x)).norm(dim=1).max()
    assert certified_bound(t, nonneg_input=True).bound >= float(err)


def test_bound_is_zero_when_every_weight_is_exact():
    target = random_target(0)
    with torch.no_grad():
        for p in target.parameters():
            p.zero_()
    t = pensia.construct(target, per_weight_eps=0.05, samples=3, seed=0)
    assert certified_bound(t).bound == 0.0


# ---- properties over random targets and arbitrary univariate prunings (no construction: any masks) ----------


@st.composite
def pruned_random_networks(draw):
    """A random ReLU target (depth 1-3, widths 1-4, with or without biases), its 2L random network of block size
    1-4 (``random_spec``), and random univariate masks: every hidden neuron keeps at most its own input weight,
    second layers keep each weight with probability 1/2. The masks need not approximate anything."""
    seed = draw(st.integers(0, 2**31 - 1))
    widths = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    bias = draw(st.booleans())
    hidden = draw(st.integers(1, 4))
    rng = np.random.default_rng(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        lin = nn.Linear(a, b, bias=bias).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, (b, a))))
            if bias:
                lin.bias.copy_(torch.from_numpy(rng.uniform(-1, 1, b)))
        layers += [lin, nn.ReLU()] if i < len(widths) - 2 else [lin]
    target = nn.Sequential(*layers).eval()
    fc = read_fc_target(target)
    spec = random_spec(fc, hidden)
    masks = {}
    for n1, n2 in block_parameter_names(spec):
        rows, cols = spec.parameter_shapes()[n1]
        first = np.zeros((rows, cols), dtype=bool)
        first[np.arange(rows), rng.integers(0, cols, rows)] = rng.random(rows) < 0.8
        masks[n1] = torch.from_numpy(first)
        masks[n2] = torch.from_numpy(rng.random(spec.parameter_shapes()[n2]) < 0.5)
    ticket = Ticket(spec=spec, distribution=WeightDistribution(), seed=seed % 1000, masks=masks)
    x = torch.from_numpy(rng.standard_normal((300, widths[0])))
    x = x / x.norm(dim=1, keepdim=True) * torch.from_numpy(rng.uniform(0, 1, (300, 1))) ** (1 / widths[0])
    x[:100] /= x[:100].norm(dim=1, keepdim=True)  # a third on the sphere, where the error is largest
    return target, fc, ticket, x


def _augment(h: torch.Tensor) -> torch.Tensor:
    return torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype)], dim=1)


@settings(max_examples=40, deadline=None)
@given(pruned_random_networks())
def test_pruned_block_computes_exactly_its_block_coefficients(net):
    """Block i of the ticket is A+ relu(x) + A- relu(-x) with (A+, A-) = block_coefficients(...), on its inputs."""
    _, fc, ticket, x = net
    weights = {k: v.double() for k, v in ticket.random_weights().items()}
    h = _augment(x) if fc.constant else x
    for n1, n2 in block_parameter_names(ticket.spec):
        w1, w2 = weights[n1] * ticket.masks[n1], weights[n2] * ticket.masks[n2]
        a_pos, a_neg = (torch.from_numpy(a) for a in block_coefficients(
            weights[n1].numpy(), ticket.masks[n1].numpy(), weights[n2].numpy(), ticket.masks[n2].numpy()))
        block = torch.relu(h @ w1.T) @ w2.T
        assert torch.allclose(block, torch.relu(h) @ a_pos.T + torch.relu(-h) @ a_neg.T, rtol=1e-12, atol=1e-12)
        h = torch.relu(block)


@settings(max_examples=40, deadline=None)
@given(pruned_random_networks())
def test_certified_bound_dominates_every_layer_error_of_any_univariate_pruning(net):
    """Per block, the measured error of the ticket's layer against the target's (constant channel included) is at
    most the certified e_i; at the output, at most the bound (float64, inputs in the unit ball)."""
    target, fc, ticket, x = net
    cert = certified_bound(ticket, target)
    ticket_net = ticket.to_module(torch.float64)
    h = _augment(x) if fc.constant else x
    t = x
    linears = [m for m in target if isinstance(m, nn.Linear)]
    acts = list(ticket_net._acts)
    with torch.no_grad():
        for i, (lin, row) in enumerate(zip(linears, cert.layers)):
            h = acts[2 * i + 1](ticket_net.layers[2 * i + 1](acts[2 * i](ticket_net.layers[2 * i](h))))
            last = i == len(linears) - 1
            t = lin(t) if last else torch.relu(lin(t))
            t_aug = _augment(t) if fc.constant and not last else t
            err = (h - t_aug).norm(dim=1).max().item()
            assert err <= row["error"] * (1 + 1e-9) + 1e-12, (i, err, row["error"])
        final = (ticket_net(x) - target(x)).norm(dim=1).max().item()
    assert final <= cert.bound * (1 + 1e-9) + 1e-12
