"""One-shot magnitude pruning after training.

Train the dense network, keep the largest-magnitude fraction ``density`` of the prunable weights (global or
layer-wise), then either reset the survivors to their initial values and retrain (``retrain=rewind``: the
one-shot variant of Frankle & Carbin 2019, §2 "one-shot pruning"; Han et al. 2015 for magnitude pruning)
or keep the trained values and fine-tune (``retrain=finetune``). With ``reinit_control`` the same mask is
also trained from a fresh random initialisation (the random-reinit control of Frankle & Carbin 2019).
"""

from __future__ import annotations

import copy

from strongticket.train.masking import MaskedModel
from strongticket.train.methods.base import Method, magnitude_scores


class OneShotMagnitude(Method):
    """Train, prune by |w| once, rewind to init (or fine-tune), retrain."""

    name = "magnitude"
    paper = "Frankle & Carbin 2019 (one-shot); Han et al. 2015"

    def score(self, net, names, ctx):  # noqa: D102
        return magnitude_scores(net, names)

    def run(self, ctx):  # noqa: D102
        net = ctx.new_net()
        init = copy.deepcopy(net.state_dict())
        model = MaskedModel(net)
        ctx.train("pretrain", model)
        masks = self.masks(net, ctx.prunable(net), ctx)
        ctx.log_masks("prune", masks)
        if self.cfg.retrain == "rewind":
            net.load_state_dict(init)
        model = MaskedModel(net, masks)
        ctx.train("retrain", model)
        if self.cfg.reinit_control:
            ctx.reinit_control(masks)
        return model
