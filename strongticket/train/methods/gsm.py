"""Global Sparse Momentum SGD (Ding, Ding, Zhou, Han, Liu, Liu 2019, "Global Sparse Momentum SGD for Pruning Very
Deep Neural Networks", NeurIPS, §3; the procedure of the authors' PyTorch re-implementation, DingXiaoH/GSM-SGD).

1. ``dense``: the dense network trains on the ordinary schedule (skipped when ``model.init_from`` is set: the
   network then starts from that run's trained weights).
2. ``gsm``: training continues from the trained weights for another ``optim.epochs`` epochs with a fresh
   optimiser, at the learning rate ``gsm_lr`` and SGD momentum ``gsm_momentum`` (unset: ``optim``'s; the
   schedule and weight decay are ``optim``'s). At every step, after the backward pass, the first-order
   Taylor metric ``|g ⊙ w|`` of every prunable weight is ranked over all prunable tensors together, and only
   the global top ``Q = round(density · N)`` keep their gradient (the "active" weights, which get the
   ordinary momentum-SGD update); the gradient of the others (the "passive" weights) is set to zero, so they
   move only by weight decay and what their momentum buffer still holds, and decay towards zero. The active
   set is chosen afresh every step, so a passive weight can come back. There is one global compression
   ratio and no per-layer setting: the per-layer densities are what the method finds (``summary.json``'s
   ``layers``, and the ``mask`` line of ``metrics.jsonl``).
3. The final mask keeps the ``density`` fraction of prunable weights with the largest ``|w|`` (one global
   threshold; ``scope=layerwise`` is honoured if asked for). The accuracy of the pruned network without any
   retraining is recorded (``gsm.pruned_test_accuracy``): GSM's claim is that it is close to the dense one.
4. With ``gsm_lottery`` the mask is applied to the initial weights (the lottery-ticket use of the reference
   code's ``gsm_lottery_ticket.py``) and trained for ``optim.epochs`` epochs (``lottery`` phase); that model is
   the run's result. Without it, the result is the pruned GSM model, untrained after pruning.

Choices made here where the paper or its code leaves a step open:

* The passive weights decay only through weight decay: ``optim.weight_decay`` = 0 is refused (they would stay
  where the last active step left them, and the final magnitude mask would cut live weights). The reference
  settings are weight decay 5e-4 and, for the GSM phase, momentum 0.99 at learning rate 1e-2 (after a dense
  phase at 3e-2 with momentum 0.9): ``--gsm-lr 0.01 --gsm-momentum 0.99``. Per step the passive weights shrink
  by about ``lr · weight_decay / (1 - momentum)`` (the GSM phase's rate and momentum), so on a short schedule a
  larger weight decay or momentum is what makes them small. ``gsm_momentum`` under Adam is refused.
* Ties in ``|g ⊙ w|`` (weights with zero gradient, e.g. below a dead unit) are broken by position, through
  ``topk``, so the result is deterministic.
* ``gsm_lottery`` with ``init_from``: the "initial" weights are the pre-trained ones, so the lottery phase
  fine-tunes the mask from them.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.train.config import RunConfig
from strongticket.train.loop import Callback, Trainer, evaluate
from strongticket.train.masking import MaskedModel, Masks, density_report
from strongticket.train.methods.base import Method, magnitude_scores
from strongticket.train.methods.phase_optim import check_momentum, phase_params, phase_settings


def active_mask(weights: list[torch.Tensor], grads: list[torch.Tensor | None], q: int) -> list[torch.Tensor]:
    """The global top-``q`` entries by ``|g ⊙ w|``: one bool tensor per weight tensor, ``q`` True in all.

    Parameters
    ----------
    weights : list of tensors
        The prunable weights (any shapes).
    grads : list of tensors or None
        Their gradients, same shapes; None counts as a zero gradient.
    q : int
        Number of active entries, in [1, total entries].

    Returns
    -------
    list of bool tensors
        Same shapes as ``weights``; ties broken by position (``topk`` on CPU is deterministic).
    """
    metric = torch.cat([(g * w).abs().reshape(-1) if g is not None else torch.zeros(w.numel(), device=w.device)
                        for w, g in zip(weights, grads)])
    keep = torch.zeros(metric.numel(), dtype=torch.bool, device=metric.device)
    keep[torch.topk(metric, q, sorted=False).indices] = True
    out, start = [], 0
    for w in weights:
        out.append(keep[start:start + w.numel()].reshape(w.shape))
        start += w.numel()
    return out


class GlobalSparseMomentum(Callback):
    """Zero the gradient of every prunable weight outside the global top-``q`` by ``|g ⊙ w|`` (before the step).

    Stateless: the active set is recomputed from the current gradient at every step, so a resumed phase needs
    only the weights and the optimiser's momentum.
    """

    def __init__(self, weights: list[nn.Parameter], q: int) -> None:
        self.weights, self.q = weights, q

    @torch.no_grad()
    def on_backward(self, trainer: Trainer) -> None:  # noqa: D102
        grads = [p.grad for p in self.weights]
        for p, g, keep in zip(self.weights, grads, active_mask(list(self.weights), grads, self.q)):
            if g is None:
                # a zero gradient, not None: an optimiser skips a parameter whose .grad is None, weight decay included
                p.grad = torch.zeros_like(p)
            else:
                g.mul_(keep)


def _mean_abs(net: nn.Module, masks: Masks, kept: bool) -> float:
    """Mean ``|w|`` over the entries that ``masks`` keeps (``kept``) or prunes, over all its tensors."""
    params = dict(net.named_parameters())
    total, count = 0.0, 0
    for n, m in masks.items():
        sel = m if kept else ~m
        total += float(params[n].detach().abs()[sel].sum())
        count += int(sel.sum())
    return total / count if count else 0.0


class GSM(Method):
    """Train dense, continue with global sparse momentum at ``density``, magnitude mask; optionally lottery retrain."""

    name = "gsm"
    paper = "Ding et al. 2019, Global Sparse Momentum SGD, §3"

    def check_run(self, config: RunConfig, net: nn.Module) -> None:  # noqa: D102
        if config.optim.weight_decay <= 0:
            raise InputError("--weight-decay must be > 0 for --method gsm: its passive weights decay towards zero "
                             f"only through weight decay (the reference setting is 5e-4), got "
                             f"{config.optim.weight_decay:g}")
        check_momentum(config.optim, self.cfg.gsm_momentum, "prune.gsm_momentum (--gsm-momentum)")

    def run(self, ctx):  # noqa: D102
        c = self.cfg
        net = ctx.new_net()
        names = ctx.prunable(net)
        info: dict[str, Any] = {"lottery": c.gsm_lottery, "dense_phase": ctx.config.model.init_from is None}
        if ctx.config.model.init_from is None:
            info["dense_test_accuracy"] = ctx.train("dense", MaskedModel(net)).get("accuracy")
        params = dict(net.named_parameters())
        weights = [params[n] for n in names]
        n_total = sum(w.numel() for w in weights)
        q = max(1, round(c.density * n_total))
        before = copy.deepcopy(net)  # weights at the start of the GSM phase, for the passive-decay record
        gsm_model = MaskedModel(net)
        trainable = phase_params([p for p in gsm_model.parameters() if p.requires_grad], ctx.config.optim,
                                 lr=c.gsm_lr, momentum=c.gsm_momentum)
        res = ctx.train("gsm", gsm_model, trainable=trainable, callbacks=[GlobalSparseMomentum(weights, q)])
        masks = self.masks(net, names, ctx)
        ctx.log_masks("prune", masks)
        phase = phase_settings(ctx.config.optim, lr=c.gsm_lr, momentum=c.gsm_momentum)
        info |= {"q": q, "gsm_test_accuracy": res.get("accuracy"), "gsm_lr": phase["lr"],
                 "gsm_momentum": phase["momentum"],
                 # mean |w| of the weights the final mask prunes (and keeps) before and after the GSM phase: the
                 # passive weights GSM drives towards zero (measured before the mask zeroes them)
                 "passive_mean_abs_before": _mean_abs(before, masks, kept=False),
                 "passive_mean_abs_after": _mean_abs(net, masks, kept=False),
                 "kept_mean_abs_before": _mean_abs(before, masks, kept=True),
                 "kept_mean_abs_after": _mean_abs(net, masks, kept=True),
                 "layer_densities": [r["density"] for r in density_report(masks)["layers"]]}
        pruned = MaskedModel(net, masks)  # zeroes the pruned entries of net
        acc = evaluate(pruned, ctx.data.test_x, ctx.data.test_y, amp=ctx.config.optim.amp)["accuracy"]
        ctx.log({"event": "gsm_pruned", "test_accuracy": acc, "q": q})
        info["pruned_test_accuracy"] = acc
        model = pruned
        if c.gsm_lottery:
            model = MaskedModel(ctx.new_net(), masks)
            info["lottery_test_accuracy"] = ctx.train("lottery", model).get("accuracy")
        ctx.extras["gsm"] = info
        return model

    def score(self, net, names, ctx):  # noqa: D102
        return magnitude_scores(net, names)
