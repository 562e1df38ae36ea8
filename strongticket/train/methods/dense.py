"""Dense training: no mask (the reference every ticket is compared with)."""

from __future__ import annotations

from strongticket.errors import InputError
from strongticket.train.masking import MaskedModel
from strongticket.train.methods.base import Method


class Dense(Method):
    """Train the whole network; ``density`` must be 1."""

    name = "dense"
    paper = "-"

    def check(self) -> None:  # noqa: D102
        if self.cfg.density != 1:
            raise InputError(f"method dense trains every weight: density must be 1, got {self.cfg.density} "
                             "(pick a pruning method, e.g. magnitude, random, snip)")

    def run(self, ctx):  # noqa: D102
        model = MaskedModel(ctx.new_net())
        ctx.train("train", model)
        return model
