"""SynFlow: iterative synaptic flow pruning, data-free (Tanaka, Kunin, Yamins, Ganguli 2020, NeurIPS, Alg. 1).

Replace every parameter by its absolute value, feed an all-ones input, R = sum of the outputs, score each
weight by |θ ⊙ ∂R/∂θ|; prune to density d^(i/n) at iteration i = 1..n (exponential schedule) with one
global ranking, rescoring the masked network each time. Computed in float64 on a copy in eval mode, as the
reference (ganguli-lab/Synaptic-Flow ``Pruners/pruners.py``) does, to avoid overflow in deep nets.
"""

from __future__ import annotations

import copy

import torch

from strongticket.train.masking import mask_from_scores
from strongticket.train.methods.base import PruneAtInit


class SynFlow(PruneAtInit):
    """Prune at initialisation by iterative synaptic saliency, with no data."""

    name = "synflow"
    paper = "Tanaka et al. 2020, Pruning neural networks without any data by iteratively conserving synaptic flow"

    def masks(self, net, names, ctx):  # noqa: D102
        work = copy.deepcopy(net).double().eval()
        with torch.no_grad():
            for p in work.parameters():
                p.abs_()
        params = dict(work.named_parameters())
        original = {n: params[n].detach().clone() for n in names}
        x = torch.ones(1, *ctx.input_shape, dtype=torch.float64, device=ctx.device)
        masks = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
        n_iter = self.cfg.synflow_iters
        for i in range(1, n_iter + 1):
            with torch.no_grad():
                for n in names:
                    params[n].copy_(original[n] * masks[n])
            work.zero_grad(set_to_none=True)
            work(x).sum().backward()
            scores = {}
            for n in names:
                s = (params[n].grad * params[n]).detach().abs().float()
                s[~masks[n]] = float("-inf")
                scores[n] = s
            masks = mask_from_scores(scores, self.cfg.density ** (i / n_iter), self.cfg.scope)
        return masks
