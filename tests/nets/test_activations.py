"""The activation registry: every recorded constant checked numerically on a fine grid, lookups, tracing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.activations import ACTIVATIONS, REGISTRY, activation
from strongticket.nets.spec import Linear, NetSpec
from strongticket.nets.trace import trace_module

EPS64 = torch.finfo(torch.float64).eps
NAMES = list(REGISTRY)
TRACED = [n for n in NAMES if n != "identity"]  # identity is no layer to trace (nn.Identity is dropped)


def _grid(radius: float = 30.0, step: float = 1e-4) -> torch.Tensor:
    n = int(round(2 * radius / step))
    return torch.linspace(-radius, radius, n + 1, dtype=torch.float64)


def test_registry_covers_the_activations_the_tracer_supports():
    assert set(ACTIVATIONS) == {"identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu", "elu",
                                "softplus"}
    assert all(name == act.name for name, act in REGISTRY.items())


def test_unknown_activation_lists_the_registered_names():
    with pytest.raises(InputError, match="swish") as info:
        activation("swish")
    assert all(name in str(info.value) for name in ACTIVATIONS)
    with pytest.raises(InputError, match="activation must be one of"):
        Linear(2, 2, activation="swish")


@pytest.mark.parametrize("name", NAMES)
def test_phi0_and_one_sided_slopes_match_the_function(name):
    act = activation(name)
    zero = torch.zeros(1, dtype=torch.float64)
    assert act(zero).item() == pytest.approx(act.phi0, abs=1e-15)
    h = 1e-7
    right = (act(zero + h) - act(zero)).item() / h
    left = (act(zero) - act(zero - h)).item() / h
    assert (left, right) == pytest.approx(act.slopes0, abs=1e-6)
    assert act.dphi0 == (act.slopes0[0] if act.slopes0[0] == act.slopes0[1] else None)


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].remainder is not None])
def test_taylor_remainder_bound_holds_on_a_fine_grid_and_is_not_loose(name):
    """|phi(x) - phi(0) - phi'(0) x| <= c x^2 at 600 001 points of [-30, 30] (float64, rounding allowed for)."""
    act = activation(name)
    x = _grid()
    if math.isfinite(act.remainder_radius):
        x = x[x.abs() <= act.remainder_radius]
    fx = act(x)
    rem = (fx - act.phi0 - act.dphi0 * x).abs()
    rounding = 4 * EPS64 * (fx.abs() + abs(act.phi0) + (act.dphi0 * x).abs())
    assert torch.all(rem <= act.remainder * x ** 2 + rounding), name
    ratio = (rem / x ** 2)[x.abs() > 1e-3].max().item()
    if act.remainder > 0:  # the constant is attained up to a factor (tanh and sigmoid are odd: the x^2 bound is not
        assert ratio >= 0.6 * act.remainder, (name, ratio)  # tight, their remainder being cubic near 0)
    else:
        assert ratio == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_kinked_activations_have_no_linear_regime(name):
    """At a kink the remainder is first order (|x| / 2 for ReLU), so no c x^2 bound exists: recorded as None."""
    act = activation(name)
    assert act.remainder is None and act.dphi0 is None
    x = torch.tensor([1e-3, -1e-3], dtype=torch.float64)
    slope = sum(act.slopes0) / 2
    assert torch.all((act(x) - slope * x).abs() / x ** 2 > 100)


@pytest.mark.parametrize("name", NAMES)
def test_lipschitz_constant_bounds_every_secant_and_is_attained(name):
    act = activation(name)
    x = _grid(step=1e-5)
    slopes = (act(x[1:]) - act(x[:-1])).abs() / (x[1:] - x[:-1])
    assert slopes.max().item() <= act.lipschitz * (1 + 1e-9)
    assert slopes.max().item() >= act.lipschitz - 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_split_identity_holds_exactly_when_recorded(name):
    """phi(x) - phi(-x) = s x for every x when ``split`` is s; for no s when ``split`` is None."""
    act = activation(name)
    x = _grid(radius=15.0, step=1e-3)
    x = x[x.abs() > 1e-6]
    quotient = (act(x) - act(-x)) / x
    if act.split is None:
        assert (quotient.max() - quotient.min()).item() > 1e-2
    else:
        assert torch.allclose(quotient, torch.full_like(x, act.split), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_homogeneity_and_sign_flags_match_the_function(name):
    act = activation(name)
    x = _grid(radius=10.0, step=1e-3)
    homogeneous = all(torch.allclose(act(a * x), a * act(x), rtol=1e-12, atol=1e-12) for a in (0.5, 3.0))
    assert homogeneous == act.positively_homogeneous
    assert (act(x).min().item() >= 0) == act.nonnegative


@pytest.mark.parametrize("name", NAMES)
def test_module_and_spec_net_compute_the_registry_function(name):
    act = activation(name)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(act.module()(x), act.fn(x))
    spec = NetSpec((Linear(3, 3, activation=name),))
    net = spec.build()
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.eye(3))
    assert torch.equal(net(x), act.fn(x))


@pytest.mark.parametrize("name", TRACED)
def test_every_registered_activation_traces_as_module_and_function(name):
    act = activation(name)

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return act.torch_functions[0](self.fc(x), **act.parameters)

    assert trace_module(nn.Sequential(nn.Linear(3, 2), act.module())).spec.layers[0].activation == name
    assert trace_module(Functional()).spec.layers[0].activation == name


@pytest.mark.parametrize("module, word", [
    (nn.LeakyReLU(0.2), "negative_slope=0.2"),
    (nn.ELU(alpha=2.0), "alpha=2.0"),
    (nn.GELU(approximate="tanh"), "approximate='tanh'"),
    (nn.Softplus(beta=2.0), "beta=2.0"),
])
def test_activation_with_other_parameters_than_the_registry_is_refused(module, word):
    """A NetSpec layer carries only the name: an ELU(alpha=2) must not be read as the registry's ELU(alpha=1)."""
    with pytest.raises(InputError, match=word):
        trace_module(nn.Sequential(nn.Linear(3, 2), module))


def test_functional_call_with_other_parameters_is_refused():
    class Elu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return F.elu(self.fc(x), 0.5)  # positional, as the functional signature allows

    class LeakyKw(Elu):
        def forward(self, x):
            return F.leaky_relu(self.fc(x), negative_slope=0.1)

    with pytest.raises(InputError, match="alpha=0.5"):
        trace_module(Elu())
    with pytest.raises(InputError, match="negative_slope=0.1"):
        trace_module(LeakyKw())
