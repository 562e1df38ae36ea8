"""GraSP: gradient signal preservation at initialisation (Wang, Zhang, Grosse 2020, ICLR, §4, Eq. 8).

The removal score is S(−θ) = −θ ⊙ Hg with g the gradient of the loss and Hg a Hessian-gradient product
(double back-propagation), logits divided by a temperature T (200 in the reference code,
alecwangcq/GraSP ``pruner/GraSP.py``); the weights with the *largest* S are removed, i.e. we keep the largest
θ ⊙ Hg. Scores are summed over ``score_batches`` batches; the ranking is global by default.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from strongticket.train.methods.base import PruneAtInit


class GraSP(PruneAtInit):
    """Prune at initialisation keeping the weights whose removal most reduces gradient flow."""

    name = "grasp"
    paper = "Wang, Zhang, Grosse 2020, GraSP, §4"

    def score(self, net, names, ctx):  # noqa: D102
        work = copy.deepcopy(net)
        params = dict(work.named_parameters())
        weights = [params[n] for n in names]
        t = self.cfg.grasp_temperature
        batches = list(ctx.score_data(self.cfg.score_batches))
        g0 = [torch.zeros_like(w) for w in weights]
        for x, y in batches:
            loss = F.cross_entropy(work(x) / t, y)
            for acc, g in zip(g0, torch.autograd.grad(loss, weights)):
                acc += g
        hg = [torch.zeros_like(w) for w in weights]
        for x, y in batches:
            loss = F.cross_entropy(work(x) / t, y)
            grads = torch.autograd.grad(loss, weights, create_graph=True)
            z = sum((g * s.detach()).sum() for g, s in zip(grads, g0))
            for acc, h in zip(hg, torch.autograd.grad(z, weights)):
                acc += h
        return {n: (w.detach() * h).detach() for n, w, h in zip(names, weights, hg)}
