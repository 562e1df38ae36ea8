"""A certified upper bound on ``sup_{|x|_2 <= R} |f(x) - g(x)|_2`` from the ticket's actual per-weight errors.

The error propagation of Pensia et al. (2020, "Optimal Lottery Tickets via SubsetSum", Thm. 1; see
``docs/constructions.md``), with the ticket's real errors instead of the worst-case budget. Block ``i`` of a
2L ticket computes exactly ``A+_i relu(x) + A-_i relu(-x)``
(:func:`strongticket.construct.blocks.block_coefficients`), i.e. ``W_i x + r_i`` with
``|r_i|_k <= sum_j Ebar_i[k, j] |x_j|`` where ``Ebar = max(|A+ - W|, |A- + W|)`` entrywise (only ``|A+ - W|``
on coordinates known to be >= 0: after a non-negative activation such as ReLU, the constant channel, or
non-negative data). Hence ``|r_i|_2 <= |Ebar_i|_2 |x|_2``. With target activations of norm ``B_i`` and errors
``e_i``, for activations with ``phi(0) = 0`` and Lipschitz constant 1 (ReLU, identity; the constants come from
:mod:`strongticket.nets.activations`):

    B_0 = R (sqrt(R^2 + 1) with the constant channel),    B_i = |W_i|_2 B_{i-1},
    e_0 = 0,    e_i = |W_i|_2 e_{i-1} + |Ebar_i|_2 (B_{i-1} + e_{i-1}).

This reduces to Pensia et al.'s ``1 + e_L <= prod(1 + eta_i)`` when ``|W_i|_2 <= 1`` and ``R = 1``. Norms are
float64 SVDs inflated by 1e-12 relative; the bound is for exact arithmetic (float32 evaluation adds rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from strongticket.construct.blocks import (
    block_coefficients,
    block_parameter_names,
    read_fc_target,
    spectral_norm,
)
from strongticket.errors import InputError
from strongticket.nets.activations import activation
from strongticket.ticket import Ticket
from strongticket.verify.measure import target_module


@dataclass(frozen=True)
class CertifiedBound:
    """The bound and its ingredients per block.

    Attributes
    ----------
    bound : float
        Upper bound on the output error over the input ball of ``radius``.
    radius : float
    layers : tuple of dict
        Per block: ``weight_norm`` |W|_2, ``error_norm`` |Ebar|_2, ``max_weight_error`` max Ebar,
        ``activation_norm`` B_i and ``error`` e_i after the block.
    """

    bound: float
    radius: float
    layers: tuple[dict, ...]


def per_weight_errors(ticket: Ticket, target: nn.Module | None = None,
                      weights: dict[str, torch.Tensor] | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per block, ``(W, E+, E-)``: the target matrix and the ticket's actual errors, float64 ``(d_out, d_in)``.

    Recomputed from the regenerated random weights and the masks, not read from the provenance.
    """
    f = target_module(ticket) if target is None else target
    fc = read_fc_target(f)
    names = block_parameter_names(ticket.spec)
    if len(names) != fc.num_layers:
        raise InputError(f"the ticket has {len(names)} blocks but the target {fc.num_layers} layers")
    weights = ticket.random_weights() if weights is None else weights
    out = []
    for (n1, n2), w in zip(names, fc.weights):
        a_pos, a_neg = block_coefficients(weights[n1].numpy(), ticket.masks[n1].numpy(),
                                          weights[n2].numpy(), ticket.masks[n2].numpy())
        if a_pos.shape != w.shape:
            raise InputError(f"block {n1}/{n2} maps {a_pos.shape[1]} -> {a_pos.shape[0]}, the target layer "
                             f"{w.shape[1]} -> {w.shape[0]}")
        out.append((w, a_pos - w, a_neg + w))
    return out


def certified_bound(ticket: Ticket, target: nn.Module | None = None, *, radius: float = 1.0,
                    nonneg_input: bool = False, weights: dict[str, torch.Tensor] | None = None) -> CertifiedBound:
    """Upper bound on ``sup_{|x|_2 <= radius} |f(x) - g(x)|_2`` (see the module docstring).

    Parameters
    ----------
    nonneg_input : bool
        Inputs are known to be >= 0 entrywise (images in [0, 1]): the first block's negative-side errors
        then never act.
    """
    if not (math.isfinite(radius) and radius > 0):
        raise InputError(f"radius must be a finite number > 0, got {radius!r}")
    f = target_module(ticket) if target is None else target
    fc = read_fc_target(f)
    blocks = per_weight_errors(ticket, f, weights)
    b = math.sqrt(radius ** 2 + 1) if fc.constant else radius
    e = 0.0
    rows = []
    acts = [activation(name) for name in fc.activations]
    for act in acts:
        if act.phi0 != 0 or act.lipschitz > 1:  # the recurrence uses |phi(z)| <= |z| and |phi(a) - phi(b)| <= |a - b|
            raise InputError(f"the certified bound needs activations with phi(0) = 0 and Lipschitz constant <= 1, "
                             f"got {act.name!r} (phi(0) = {act.phi0:g}, Lipschitz {act.lipschitz:g})")
    # inputs known to be >= 0 (data, or the previous layer's non-negative activation): the negative half never acts
    prev_nonneg = nonneg_input or bool(ticket.provenance.get("nonneg_input", False))
    for i, ((w, e_pos, e_neg), act) in enumerate(zip(blocks, acts)):
        ebar = np.maximum(np.abs(e_pos), np.abs(e_neg))
        if prev_nonneg:
            ebar = np.abs(e_pos)
        elif fc.constant:
            ebar[:, -1] = np.abs(e_pos[:, -1])  # the constant channel is +1
        nw, ne = spectral_norm(w), spectral_norm(ebar)
        e = nw * e + ne * (b + e)
        b = nw * b
        rows.append({"block": i, "weight_norm": nw, "error_norm": ne, "max_weight_error": float(ebar.max()),
                     "activation_norm": b, "error": e})
        prev_nonneg = act.nonnegative
    return CertifiedBound(bound=e, radius=radius, layers=tuple(rows))
