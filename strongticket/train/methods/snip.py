"""SNIP: single-shot pruning by connection sensitivity (Lee, Ajanthan, Torr 2019, ICLR, §4.1, Eq. 6).

The score of weight j is |∂L/∂c_j| at c = 1 for a multiplicative mask c, which equals |g_j · w_j|; it is
computed at initialisation on ``score_batches`` training batches (gradients summed), ranked globally by
default (the paper's choice), then the network is trained with the mask. Gradients are taken w.r.t. the
weight and multiplied by it, as mil-ad/snip#4 and Synaptic-Flow#3 settled.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from strongticket.train.methods.base import PruneAtInit


class SNIP(PruneAtInit):
    """Prune at initialisation by |gradient × weight| on a few batches."""

    name = "snip"
    paper = "Lee, Ajanthan, Torr 2019, SNIP, §4.1"

    def score(self, net, names, ctx):  # noqa: D102
        work = copy.deepcopy(net)
        params = dict(work.named_parameters())
        weights = [params[n] for n in names]
        grads = [torch.zeros_like(w) for w in weights]
        for x, y in ctx.score_data(self.cfg.score_batches):
            loss = F.cross_entropy(work(x), y)
            for acc, g in zip(grads, torch.autograd.grad(loss, weights)):
                acc += g
        return {n: (g * w).detach().abs() for n, g, w in zip(names, grads, weights)}
