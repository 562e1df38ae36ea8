"""Iterative magnitude pruning: the lottery ticket procedure, reset to init or rewound to step k.

Frankle & Carbin 2019 (ICLR, §2, "Identifying winning tickets"): train, prune ``rate`` of the remaining
weights by magnitude, reset the survivors to their initial values θ₀, repeat; after n rounds the density is
(1 − rate)ⁿ (the last round prunes exactly to ``density``). ``imp-rewind`` resets to the weights at
training step ``rewind_step`` instead and resumes the learning-rate schedule there (Frankle, Dziugaite, Roy,
Carbin 2020, "Linear mode connectivity and the lottery ticket hypothesis", §3). With ``reinit_control``
the final mask is also trained from a fresh random initialisation (the random-reinit control).
"""

from __future__ import annotations

import copy
import math

from strongticket.errors import InputError
from strongticket.train.loop import Callback
from strongticket.train.masking import MaskedModel, mask_from_scores
from strongticket.train.methods.base import Method, magnitude_scores


def imp_densities(density: float, rate: float) -> list[float]:
    """Densities after each pruning round: (1 − rate)^r, the last one clipped to ``density``."""
    if density >= 1:
        return []
    rounds = math.ceil(math.log(density) / math.log(1 - rate) - 1e-9)
    return [max(density, (1 - rate) ** r) for r in range(1, rounds + 1)]


class CaptureRewind(Callback):
    """Save the network's weights at step ``k`` to the run directory (the rewinding point)."""

    def __init__(self, ctx, model: MaskedModel, k: int) -> None:
        self.ctx, self.model, self.k = ctx, model, k

    def on_step(self, trainer) -> None:  # noqa: D102
        if trainer.step == self.k:
            self.ctx.save_rewind(self.model.net.state_dict())


class IMP(Method):
    """Iterative magnitude pruning with resetting to initialisation."""

    name = "imp"
    paper = "Frankle & Carbin 2019, The Lottery Ticket Hypothesis, §2"
    rewinding = False

    def score(self, net, names, ctx):  # noqa: D102
        return magnitude_scores(net, names)

    def level_done(self, ctx, level: int, model: MaskedModel) -> None:
        """Called after each level of the trajectory is trained (level 0: the dense network, level r: the
        ticket of round r), also when a finished level is loaded on resume. IMP itself keeps nothing here;
        Lottery Pools keeps every level's ticket."""

    def check(self) -> None:  # noqa: D102
        if self.rewinding and self.cfg.rewind_step <= 0:
            raise InputError("imp-rewind needs rewind_step > 0 (--rewind-step K); use imp to reset to init")

    def run(self, ctx):  # noqa: D102
        k = self.cfg.rewind_step if self.rewinding else 0
        net = ctx.new_net()
        names = ctx.prunable(net)
        init = copy.deepcopy(net.state_dict())
        model = MaskedModel(net)
        callbacks = [CaptureRewind(ctx, model, k)] if k > 0 else []
        ctx.train("round0", model, callbacks=callbacks)
        self.level_done(ctx, 0, model)
        start = ctx.load_rewind() if k > 0 else init
        masks = None
        for r, d in enumerate(imp_densities(self.cfg.density, self.cfg.rate), start=1):
            masks = mask_from_scores(magnitude_scores(net, names, masks), d, self.cfg.scope)
            ctx.log_masks(f"round{r}", masks)
            net.load_state_dict(start)
            model = MaskedModel(net, masks)
            ctx.train(f"round{r}", model, start_step=k)
            self.level_done(ctx, r, model)
        if self.cfg.reinit_control and masks is not None:
            ctx.reinit_control(masks)
        return model


class IMPRewind(IMP):
    """Iterative magnitude pruning with rewinding to training step ``rewind_step``."""

    name = "imp-rewind"
    paper = "Frankle, Dziugaite, Roy, Carbin 2020, Linear Mode Connectivity and the LTH, §3"
    rewinding = True
