"""The one interface every pruning method implements, and the helpers they share.

A method is a small class (Synaptic-Flow's ``Pruner`` habit): ``score`` returns one score tensor per prunable
tensor (higher = keep) and ``run`` is the method's whole procedure, written against :class:`RunContext`
(``ctx.new_net``, ``ctx.train``, ``ctx.log``): prune at init then train, train then prune then retrain,
prune during training, or train scores. Everything a method draws comes from ``ctx.generator(stream)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from strongticket.train.config import PruneConfig, RunConfig
from strongticket.train.masking import MaskedModel, Masks, mask_from_scores

if TYPE_CHECKING:
    from strongticket.train.context import RunContext


class Method:
    """Base class: subclasses set ``name``, ``paper`` and override :meth:`run` (and usually :meth:`score`)."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    default_scope: ClassVar[str] = "global"
    default_init: ClassVar[str] = "default"
    #: The method searches masks on the random initialisation and never trains the weights (a strong ticket):
    #: pre-trained weights (``model.init_from``) would never be used, so a run refuses them.
    keeps_random_weights: ClassVar[bool] = False

    def __init__(self, cfg: PruneConfig) -> None:
        self.cfg = cfg

    def check(self) -> None:
        """Raise :class:`InputError` if ``cfg`` does not suit this method (called before anything is written)."""

    def check_run(self, config: RunConfig, net: nn.Module) -> None:
        """Raise :class:`InputError` if the method cannot run ``config`` on ``net`` (the run's model, built on
        the meta device: shapes and modules, no values). Called before the run directory is touched."""

    def check_data(self, config: RunConfig, n_train: int) -> None:
        """Raise :class:`InputError` if the method cannot run on the ``n_train`` training examples the run has
        (after ``data.train_subset``). Called before the run directory is touched."""

    def score(self, net: nn.Module, names: list[str], ctx: RunContext) -> dict[str, torch.Tensor]:
        """Return ``{name: score tensor of the parameter's shape}``; higher scores are kept."""
        raise NotImplementedError

    def masks(self, net: nn.Module, names: list[str], ctx: RunContext) -> Masks:
        """Return masks at ``cfg.density`` from :meth:`score` under ``cfg.scope``."""
        return mask_from_scores(self.score(net, names, ctx), self.cfg.density, self.cfg.scope)

    def run(self, ctx: RunContext) -> MaskedModel:
        """Run the whole procedure and return the final masked model."""
        raise NotImplementedError


class PruneAtInit(Method):
    """Score the freshly initialised network, mask it at the target density, train it once."""

    def run(self, ctx: RunContext) -> MaskedModel:  # noqa: D102
        net = ctx.new_net()
        masks = self.masks(net, ctx.prunable(net), ctx)
        ctx.log_masks("prune", masks)
        model = MaskedModel(net, masks)
        ctx.train("train", model)
        return model


def magnitude_scores(net: nn.Module, names: list[str], previous: Masks | None = None) -> dict[str, torch.Tensor]:
    """``|w|`` per prunable tensor; entries already pruned in ``previous`` score ``-inf`` (they stay pruned)."""
    params = dict(net.named_parameters())
    out = {}
    for n in names:
        s = params[n].detach().abs().float().clone()
        if previous is not None and n in previous:
            s[~previous[n].to(s.device)] = float("-inf")
        out[n] = s
    return out
