"""Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune", §3).

During one training run, every ``gmp_every`` steps between ``t0 = gmp_start·T`` and ``t1 = gmp_end·T`` the
mask is recomputed by magnitude so that the sparsity follows the cubic schedule

    s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (t1 − t0))³,   s_i = 0, s_f = 1 − density,

pruned weights never return (their scores are −inf), and training continues at the final mask after t1.
"""

from __future__ import annotations

import torch

from strongticket.train.loop import Callback
from strongticket.train.masking import MaskedModel, mask_from_scores
from strongticket.train.methods.base import Method, magnitude_scores


def cubic_density(step: int, t0: int, t1: int, final_density: float) -> float:
    """Density at ``step`` of the Zhu–Gupta cubic schedule from 1 at ``t0`` to ``final_density`` at ``t1``."""
    if step <= t0:
        return 1.0
    frac = min(1.0, (step - t0) / max(1, t1 - t0))
    sparsity = (1 - final_density) * (1 - (1 - frac) ** 3)
    return 1.0 - sparsity


class GMPSchedule(Callback):
    """Re-mask by magnitude on the cubic schedule (updates the masks in place, zeroing optimiser state)."""

    def __init__(self, model: MaskedModel, names: list[str], density: float, scope: str,
                 start: float, end: float, every: int) -> None:
        self.model, self.names, self.density, self.scope = model, names, density, scope
        self.start, self.end, self.every = start, end, every

    def on_step(self, trainer) -> None:  # noqa: D102
        t0, t1 = int(self.start * trainer.total_steps), max(1, int(self.end * trainer.total_steps))
        t = trainer.step
        if t < t0 or t > t1 or ((t - t0) % self.every and t != t1):
            return
        d = cubic_density(t, t0, t1, self.density)
        prev = self.model.masks
        scores = magnitude_scores(self.model.net, self.names, prev)
        with torch.no_grad():
            self.model.set_masks(mask_from_scores(scores, d, self.scope), trainer.optimizer)


class GradualMagnitude(Method):
    """Prune by magnitude during training on the Zhu–Gupta cubic schedule."""

    name = "gmp"
    paper = "Zhu & Gupta 2017, To prune, or not to prune, §3"

    def run(self, ctx):  # noqa: D102
        net = ctx.new_net()
        names = ctx.prunable(net)
        params = dict(net.named_parameters())
        model = MaskedModel(net, {n: torch.ones_like(params[n], dtype=torch.bool) for n in names})
        c = self.cfg
        ctx.train("train", model, callbacks=[GMPSchedule(model, names, c.density, c.scope, c.gmp_start,
                                                         c.gmp_end, c.gmp_every)])
        ctx.log_masks("final", model.masks)
        return model
