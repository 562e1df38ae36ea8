"""The activation registry: one entry per supported activation, everything the package needs to know about it.

Every layer of a :class:`~strongticket.nets.spec.NetSpec` names its activation; :func:`activation` turns the
name into an :class:`Activation` with the torch function (:class:`~strongticket.nets.spec.SpecNet` applies it),
the ``nn.Module`` a trained model uses, what the ``torch.fx`` tracer recognises, the Lipschitz constant (error
propagation in :mod:`strongticket.verify.certified`) and the local facts the depth-L+1 construction of
Burkholz (2022, "Most Activation Functions Can Win the Lottery Without Excessive Depth", Thm. 2.6) needs:

* ``phi0`` = phi(0): a neuron whose inputs are all pruned outputs this constant (it must be cancelled, or used
  as a bias source);
* ``slopes0`` = (phi'(0-), phi'(0+)): the one-sided derivatives at 0; ``dphi0`` is their common value when
  phi is differentiable at 0 (the next layer's subset-sum targets are divided by lambda * phi'(0));
* ``remainder`` = c with ``|phi(x) - phi(0) - phi'(0) x| <= c x^2`` for ``|x| <= remainder_radius``: the
  error of the small-weight linear regime. For smooth phi, Taylor's theorem with the Lagrange remainder gives
  ``c = sup |phi''| / 2``; the derivation of each constant is in the comment beside it. ``None`` where phi is
  not differentiable at 0 (ReLU, LeakyReLU), whose first layer is exact instead:
* ``split`` = s with ``phi(x) - phi(-x) = s x`` for every x (ReLU 1, LeakyReLU(a) 1 + a, GELU, SiLU and
  softplus 1), and ``positively_homogeneous`` (``phi(a x) = a phi(x)`` for ``a > 0``): together they make the
  +/- split of the first layer exact (ReLU, LeakyReLU with the ``1 / (1 + a)`` rescale).

The registry is the literal dict :data:`REGISTRY`; to support another activation, add one entry there (and a
line in the tests that checks its constants on a grid). See ``docs/constructions.md`` for the construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from strongticket.errors import InputError


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass(frozen=True, eq=False)
class Activation:
    """One activation function and its constants (see the module docstring for each field's meaning).

    Attributes
    ----------
    name : str
        The name layers carry in a ``NetSpec`` (and in ``ticket.json``).
    fn : callable
        ``Tensor -> Tensor``, elementwise; what a built network applies.
    module_type : type of nn.Module
        The module class a model uses for it (``nn.Identity`` for the identity).
    parameters : mapping
        The module's fixed constructor arguments (LeakyReLU's ``negative_slope`` 0.01, ELU's ``alpha`` 1, ...);
        :meth:`module` passes them, and the tracer accepts a module or a functional call only when its arguments
        equal them. Their order is that of the functional form's positional arguments after the input.
    torch_functions : tuple of callables
        Functional forms the tracer recognises (``F.relu``, ``torch.relu``, ...).
    tensor_methods : tuple of str
        ``Tensor`` methods the tracer recognises (``x.relu()``).
    lipschitz : float
        Smallest L with ``|phi(x) - phi(y)| <= L |x - y|`` (rounded up in the last digit given).
    phi0 : float
        phi(0).
    slopes0 : tuple of float
        ``(phi'(0-), phi'(0+))``.
    remainder : float or None
        c in ``|phi(x) - phi(0) - phi'(0) x| <= c x^2``; None when phi is not differentiable at 0.
    remainder_radius : float
        The bound holds for ``|x| <= remainder_radius`` (``math.inf``: for every x).
    split : float or None
        s with ``phi(x) - phi(-x) = s x`` for every x; None when no such identity holds.
    positively_homogeneous : bool
        ``phi(a x) = a phi(x)`` for every ``a > 0``.
    nonnegative : bool
        ``phi(x) >= 0`` for every x (the next layer's inputs are known to be >= 0).
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    module_type: type[nn.Module]
    lipschitz: float
    phi0: float
    slopes0: tuple[float, float]
    remainder: float | None
    remainder_radius: float = math.inf
    split: float | None = None
    positively_homogeneous: bool = False
    nonnegative: bool = False
    parameters: Mapping[str, Any] = field(default_factory=dict)
    torch_functions: tuple[Callable[..., Any], ...] = ()
    tensor_methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))

    @property
    def dphi0(self) -> float | None:
        """phi'(0) when phi is differentiable at 0 (both one-sided slopes equal), else None."""
        left, right = self.slopes0
        return left if left == right else None

    def module(self) -> nn.Module:
        """A fresh ``nn.Module`` applying this activation (with :attr:`parameters`)."""
        return self.module_type(**self.parameters)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``fn(x)``."""
        return self.fn(x)


#: LeakyReLU's negative slope, PyTorch's default; the only slope a NetSpec layer carries.
LEAKY_SLOPE = 0.01

#: Every supported activation, by name (the names a NetSpec layer may carry).
REGISTRY: Mapping[str, Activation] = MappingProxyType({
    "identity": Activation(
        "identity", _identity, nn.Identity, lipschitz=1.0, phi0=0.0, slopes0=(1.0, 1.0),
        remainder=0.0,  # phi is linear
        split=2.0, positively_homogeneous=True),
    "relu": Activation(
        "relu", F.relu, nn.ReLU, lipschitz=1.0, phi0=0.0, slopes0=(0.0, 1.0),
        remainder=None,  # kink at 0: relu(x) - x/2 = |x|/2 is first order; the +/- split is exact instead
        split=1.0, positively_homogeneous=True, nonnegative=True,
        torch_functions=(F.relu, torch.relu), tensor_methods=("relu",)),
    "leaky_relu": Activation(
        "leaky_relu", F.leaky_relu, nn.LeakyReLU, lipschitz=1.0, phi0=0.0, slopes0=(LEAKY_SLOPE, 1.0),
        remainder=None,  # kink at 0 as for ReLU; phi(x) - phi(-x) = (1 + a) x, hence the 1/(1 + a) rescale
        split=1.0 + LEAKY_SLOPE, positively_homogeneous=True,
        parameters={"negative_slope": LEAKY_SLOPE}, torch_functions=(F.leaky_relu,)),
    "tanh": Activation(
        "tanh", torch.tanh, nn.Tanh, lipschitz=1.0, phi0=0.0, slopes0=(1.0, 1.0),
        # tanh'' = -2 t (1 - t^2), t = tanh x; |.| is largest at t^2 = 1/3: 4 / (3 sqrt 3), so c = 2 / (3 sqrt 3)
        remainder=2.0 / (3.0 * math.sqrt(3.0)),
        torch_functions=(torch.tanh, F.tanh), tensor_methods=("tanh",)),
    "sigmoid": Activation(
        "sigmoid", torch.sigmoid, nn.Sigmoid, lipschitz=0.25, phi0=0.5, slopes0=(0.25, 0.25),
        # s'' = p (1 - p) (1 - 2p), p = s(x); |.| is largest at p = (3 -+ sqrt 3) / 6: 1 / (6 sqrt 3), so
        # c = 1 / (12 sqrt 3)
        remainder=1.0 / (12.0 * math.sqrt(3.0)), nonnegative=True,
        torch_functions=(torch.sigmoid, F.sigmoid), tensor_methods=("sigmoid",)),
    "gelu": Activation(
        "gelu", F.gelu, nn.GELU,
        # gelu' = Phi(x) + x phi_N(x) is largest at x = sqrt 2 (where gelu'' = 0): (1 + erf 1) / 2 + 1 / (e sqrt pi)
        lipschitz=1.128905, phi0=0.0, slopes0=(0.5, 0.5),
        # gelu'' = (2 - x^2) phi_N(x): |.| is largest at x = 0 (2 phi_N(0); at x = +-2 only 2 phi_N(2)), so
        # c = phi_N(0) = 1 / sqrt(2 pi)
        remainder=1.0 / math.sqrt(2.0 * math.pi),
        split=1.0,  # x Phi(x) + x Phi(-x) = x
        parameters={"approximate": "none"}, torch_functions=(F.gelu,)),
    "silu": Activation(
        "silu", F.silu, nn.SiLU,
        # silu' = s + x s (1 - s) peaks at x ~ 2.3994 (root of silu''), value 1.0998393...
        lipschitz=1.099840, phi0=0.0, slopes0=(0.5, 0.5),
        # silu'' = (2 - x tanh(x/2)) / (4 cosh^2(x/2)) <= 1/2 (x tanh(x/2) >= 0), and >= -|x| / (4 (1 + x^2/4))
        # >= -1/4: |silu''| <= 1/2, so c = 1/4 (attained as x -> 0)
        remainder=0.25,
        split=1.0,  # x s(x) + x s(-x) = x
        torch_functions=(F.silu,)),
    "elu": Activation(
        "elu", F.elu, nn.ELU, lipschitz=1.0, phi0=0.0, slopes0=(1.0, 1.0),
        # x > 0: remainder 0; x < 0: e^x - 1 - x = e^xi x^2 / 2 with xi in (x, 0), so c = 1/2 (alpha = 1)
        remainder=0.5,
        parameters={"alpha": 1.0}, torch_functions=(F.elu,)),
    "softplus": Activation(
        "softplus", F.softplus, nn.Softplus, lipschitz=1.0, phi0=math.log(2.0), slopes0=(0.5, 0.5),
        # softplus'' = s (1 - s) <= 1/4, so c = 1/8
        remainder=0.125, nonnegative=True,
        split=1.0,  # log(1 + e^x) - log(1 + e^-x) = x
        parameters={"beta": 1.0, "threshold": 20.0}, torch_functions=(F.softplus,)),
})

#: Activation names in registry order.
ACTIVATIONS: tuple[str, ...] = tuple(REGISTRY)


def activation(name: str) -> Activation:
    """The registry entry called ``name``.

    Raises
    ------
    InputError
        When ``name`` is not registered; the message lists the registered names.
    """
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"activation must be one of {', '.join(REGISTRY)}, got {name!r}") from None
