"""The law of a construction's random weights, chosen by name or relative to the target's weights.

The theorems draw the random network from U[-1, 1] (Pensia et al. 2020, Theorem 1); their experiment
draws it from U[min w, max w] of the target (``target-range``). A target whose weights exceed 1/2 in
magnitude is out of reach of products of two U[-1, 1] draws near its extremes: :func:`widened_uniform`
keeps the theorem's margin for such targets.
"""

from __future__ import annotations

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.distributions import LAWS, WeightDistribution

#: Laws defined relative to the target, beside the named laws of :data:`strongticket.nets.distributions.LAWS`.
TARGET_LAWS = ("target-range",)


def distribution_for(name: str, target: nn.Module) -> WeightDistribution:
    """The random weights' law called ``name`` for ``target``.

    Parameters
    ----------
    name : str
        ``target-range`` for U[min w, max w] over every parameter of the target (Pensia et al.'s experiment),
        or a law of :data:`~strongticket.nets.distributions.LAWS` with its default parameters.
    target : nn.Module
        The target network.
    """
    check_name(name)
    if name == "target-range":
        w = torch.cat([p.detach().reshape(-1) for p in target.parameters()])
        return WeightDistribution.uniform(float(w.min()), float(w.max()))
    return WeightDistribution(name)


def check_name(name: object) -> str:
    """``name`` if it names a law :func:`distribution_for` knows (one of
    :data:`~strongticket.nets.distributions.LAWS` or :data:`TARGET_LAWS`); else a one-line :class:`InputError`
    listing them (checked before any work, where the target is not yet known)."""
    if not isinstance(name, str) or (name not in LAWS and name not in TARGET_LAWS):
        raise InputError(f"--distribution must be one of {sorted(LAWS) + list(TARGET_LAWS)}, got {name!r}")
    return name


def widened_uniform(target: nn.Module) -> WeightDistribution:
    """U[-a, a] with ``a = max(1, sqrt(2 max|w|))``: the theorem's U[-1, 1], widened for larger targets.

    The theorem assumes weights in [-1, 1]; products ``v u`` of two U[-1, 1] draws reach twice the largest
    weight of a target with ``max|w| <= 1/2``. A target with larger weights gets the same margin (products
    up to ``2 max|w|``), which on the digits MLPs of :mod:`strongticket.demo` left no weight outside eps' at
    n = 21 over the seeds tried.
    """
    w_max = max(float(p.detach().abs().max()) for p in target.parameters())
    a = max(1.0, (2 * w_max) ** 0.5)
    return WeightDistribution.uniform(-a, a)


__all__ = ["TARGET_LAWS", "check_name", "distribution_for", "widened_uniform"]
