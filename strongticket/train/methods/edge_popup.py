"""Edge-popup: find a subnetwork of a frozen random network by training scores (Ramanujan, Wortsman,
Kembhavi, Farhadi, Rastegari 2020, "What's hidden in a randomly weighted neural network?", §3, Alg. 1).

Weights keep their random initial values (the paper's best is the signed Kaiming constant, our
``init=signed_constant``); each prunable weight gets a score initialised like a Kaiming-uniform weight; every
forward uses the top-``density`` fraction of |score| in each layer (a ``kthvalue`` threshold, not a full sort)
and the backward passes gradients straight through to all scores, so pruned edges can "pop up" again.
Only the scores are optimised. The final mask is the top-k of the trained scores.

The random network is drawn like a constructed ticket's: every parameter (biases too) from
``WeightDistribution.generate(spec, seed)`` with the init scheme's law and the run's seed
(:meth:`RunContext.record_random_network <strongticket.train.context.RunContext.record_random_network>`), and the record goes to ``summary.json`` as
``random_network``; so the run exports as a strong :class:`~strongticket.ticket.Ticket`
(:mod:`strongticket.train.export`). A model no ``NetSpec`` describes (ResNet-20) keeps the generator init and
records ``{"unsupported": reason}``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from strongticket.train.masking import MaskedModel
from strongticket.train.methods.base import Method


class EdgePopup(Method):
    """Train per-weight scores with a straight-through top-k; weights stay frozen at their random values."""

    name = "edge-popup"
    keeps_random_weights = True
    paper = "Ramanujan et al. 2020, What's hidden in a randomly weighted neural network?, §3"
    default_scope = "layerwise"
    default_init = "signed_constant"

    def run(self, ctx):  # noqa: D102
        net = ctx.new_net()
        ctx.record_random_network(net)
        names = ctx.prunable(net)
        params = dict(net.named_parameters())
        g = ctx.generator("scores")
        scores = {}
        for n in names:
            s = torch.empty(params[n].shape)
            nn.init.kaiming_uniform_(s, a=math.sqrt(5), generator=g) if s.dim() > 1 else \
                nn.init.uniform_(s, -1.0, 1.0, generator=g)
            scores[n] = s.to(params[n].device)
        for p in net.parameters():
            p.requires_grad_(False)
        model = MaskedModel(net, scores=scores, score_density=self.cfg.density)
        ctx.train("train", model, trainable=list(model.scores.values()))
        ctx.log_masks("final", model.masks)
        return model
