"""The certified bound dominates every measured error, on random targets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strongticket.construct import malach, pensia
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
