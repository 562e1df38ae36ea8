"""Random pruning baselines at initialisation.

* ``random``: uniformly random scores, so every weight is kept with the same probability — one global
  ranking (``scope=global``, Synaptic-Flow's ``Rand``) or an exact density per layer (``scope=layerwise``,
  open_lth's ``randomly_prune --strategy layerwise``).
* ``random-erk``: per-layer densities of the Erdős–Rényi-Kernel rule, density ∝ (Σ dims)/(Π dims)
  (Evci, Gale, Menick, Castro, Elsen 2020, "Rigging the Lottery", §3), random within each layer.

Frankle, Dziugaite, Roy, Carbin 2021 ("Pruning neural networks at initialization: why are we missing the
mark?") show these are the controls that pruning-at-init methods must beat.
"""

from __future__ import annotations

import torch

from strongticket.train.masking import erk_densities, mask_from_scores
from strongticket.train.methods.base import PruneAtInit


class RandomPrune(PruneAtInit):
    """Uniformly random mask at the target density (global or per layer)."""

    name = "random"
    paper = "Synaptic-Flow Rand; open_lth randomly_prune"

    def score(self, net, names, ctx):  # noqa: D102
        g = ctx.generator("prune")
        params = dict(net.named_parameters())
        return {n: torch.rand(params[n].shape, generator=g) for n in names}


class RandomERK(PruneAtInit):
    """Random mask with Erdős–Rényi-Kernel per-layer densities (Evci et al. 2020)."""

    name = "random-erk"
    paper = "Evci et al. 2020, Rigging the Lottery, §3 (ERK)"
    default_scope = "layerwise"

    def masks(self, net, names, ctx):  # noqa: D102
        params = dict(net.named_parameters())
        dens = erk_densities({n: tuple(params[n].shape) for n in names}, self.cfg.density)
        g = ctx.generator("prune")
        out = {}
        for n in names:
            scores = {n: torch.rand(params[n].shape, generator=g)}
            out[n] = mask_from_scores(scores, max(dens[n], 1e-12), "layerwise")[n] if dens[n] > 0 else \
                torch.zeros(params[n].shape, dtype=torch.bool)
        return out
