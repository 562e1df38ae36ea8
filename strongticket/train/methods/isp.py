"""Instant Soup Pruning (Jaiswal, Liu, Chen, Ding, Wang 2023, "Instant Soup: Cheap Pruning Ensembles in A Single
Pass Can Draw Lottery Tickets from Large Models", ICML, §3).

IMP's expensive train-prune-retrain rounds are replaced by cheap, noisy masks that are combined. One training
run on the ordinary ``optim.epochs`` schedule, in stages:

1. the main (masked) model trains on ``isp_main_fraction`` of an epoch, the schedule continuing;
2. ``isp_copies`` (K) copies start from its weights and train, each on its own share of the training set
   (``isp_copy_fraction`` of it; the shares are disjoint and drawn at random per stage), with a fresh optimiser
   at the main model's current learning rate;
3. each copy proposes a further global magnitude step: prune ``isp_step`` of the weights still kept;
4. the K weak masks are combined by a vote (:func:`vote_masks`) and imposed on the main model (no weights
   are averaged).

Stages continue until the sparsity is within 5 points of the target, then one global magnitude step prunes
to ``density`` exactly and the main model fine-tunes for the rest of the schedule.
The copies' training time and steps are recorded as the ``isp-copies`` entry of the run's phases, so they count
in its wall time (the method's claim is that it is cheaper than IMP).

Choices made here where the paper leaves a step open: the vote rule is a parameter (``majority`` by default;
the released code uses at-least-one, an element-wise OR, in most scripts and all, an AND, in one); a stage
whose vote would fall below the target density keeps instead the target number of weights ranked by votes,
then by the main model's ``|w|``; staging also ends, with a note in the summary, when a stage prunes nothing
(the copies never agree) or when the next stage would not leave a step of the schedule for fine-tuning.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from strongticket.errors import InputError
from strongticket.train.config import derive_seed
from strongticket.train.loop import Callback, Trainer, lr_factor
from strongticket.train.masking import MaskedModel, Masks, mask_from_scores
from strongticket.train.methods.base import Method, magnitude_scores

VOTES = ("majority", "at-least-one", "all")
CLOSE_ENOUGH = 0.05  # sparsity points from the target at which the stages stop (the released code's rule)


def vote_masks(masks: Sequence[Masks], rule: str = "majority") -> Masks:
    """Combine K masks entry by entry: keep an entry when enough of them keep it.

    Parameters
    ----------
    masks : sequence of dict of name -> bool tensor
        K >= 1 masks over the same names and shapes.
    rule : str
        ``at-least-one`` (kept by >= 1 mask: the element-wise OR, what Instant Soup's released code uses in
        most of its scripts), ``all`` (kept by all K: the AND of its ``isp_all2`` script) or ``majority``
        (kept by more than K/2; the default here, between the two).

    Returns
    -------
    dict of name -> bool tensor
        The combined mask, same names and shapes.
    """
    if rule not in VOTES:
        raise InputError(f"vote rule must be one of {', '.join(VOTES)}, got {rule!r}")
    if not masks:
        raise InputError("vote_masks needs at least one mask, got none")
    names = set(masks[0])
    if any(set(m) != names for m in masks):
        raise InputError("vote_masks: the masks cover different tensors")
    k = len(masks)
    need = {"at-least-one": 1, "all": k, "majority": k // 2 + 1}[rule]
    return {n: vote_counts(masks, n) >= need for n in masks[0]}


def vote_counts(masks: Sequence[Masks], name: str) -> torch.Tensor:
    """Number of masks keeping each entry of tensor ``name`` (an integer tensor of its shape)."""
    return torch.stack([m[name].to(torch.int64) for m in masks]).sum(0)


def vote_then_magnitude(masks: Sequence[Masks], net, names: list[str], previous: Masks) -> dict[str, torch.Tensor]:
    """Scores ranking entries by their vote count, ties broken by ``|w|`` (entries pruned in ``previous``:
    ``-inf``): ``votes + |w| / (1 + max |w|)``, the fraction below 1 so that a vote always outweighs it."""
    mags = magnitude_scores(net, names, previous)
    top = max((float(m[m.isfinite()].max()) for m in mags.values() if bool(m.isfinite().any())), default=0.0)
    return {n: vote_counts(masks, n).to(mags[n].device).float() + mags[n] / (1 + top) for n in names}


def mask_density(masks: Masks) -> float:
    """Kept fraction over all tensors of ``masks``."""
    total = sum(m.numel() for m in masks.values())
    return sum(int(m.sum()) for m in masks.values()) / total if total else 1.0


class StopAt(Callback):
    """End the phase after optimiser step ``step`` (a stage is a fraction of an epoch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_start(self, trainer) -> None:  # noqa: D102
        trainer.stop = trainer.step >= self.step

    def on_step(self, trainer) -> None:  # noqa: D102
        trainer.stop = trainer.step >= self.step


class InstantSoup(Method):
    """Stages of cheap copies whose magnitude masks are combined by vote; then one-shot to the density."""

    name = "isp"
    paper = "Jaiswal et al. 2023, Instant Soup Pruning, §3"

    def check(self) -> None:  # noqa: D102
        c = self.cfg
        if c.isp_copies * c.isp_copy_fraction > 1 + 1e-9:
            raise InputError(f"isp_copies x isp_copy_fraction (--isp-copies, --isp-copy-fraction) must be <= 1 "
                             f"(disjoint shares of the training set), got {c.isp_copies} x {c.isp_copy_fraction}")

    def _copies(self, ctx, net, names: list[str], masks: Masks, stage: int, step: int) -> list[Masks]:
        """Train the K copies of stage ``stage`` from ``net`` and return their proposed masks."""
        c, cfg = self.cfg, ctx.config
        data = ctx.data
        n = len(data.train_y)
        share = max(1, round(c.isp_copy_fraction * n))
        perm = torch.randperm(n, generator=ctx.generator(f"isp-shares:{stage}")).to(data.device)
        spe = math.ceil(n / cfg.data.batch_size)
        lr = cfg.optim.lr * lr_factor(cfg.optim, step, cfg.optim.epochs * spe, spe)
        optim = replace(cfg.optim, lr=lr, epochs=1, schedule="constant", warmup_steps=0, milestones=(),
                        early_stop_patience=None)
        target = mask_density(masks) * (1 - c.isp_step)
        out = []
        for j in range(c.isp_copies):
            idx = perm[j * share:(j + 1) * share]
            sub = replace(data, train_x=data.train_x[idx], train_y=data.train_y[idx])
            copy_net = copy.deepcopy(net)
            model = MaskedModel(copy_net, masks)
            augment = cfg.data.augment or data.augment
            trainer = Trainer(model, sub, optim, [p for p in model.parameters() if p.requires_grad],
                              seed=derive_seed(cfg.seed, "isp-copy", stage, j), batch_size=cfg.data.batch_size,
                              augment=augment)
            started = time.perf_counter()
            trainer.run()
            # the copies' cost counts in the run's wall time and steps (the method's claim is about cost)
            rec = ctx.phases.setdefault("isp-copies", {"seconds": 0.0, "steps": 0})
            rec["seconds"] += time.perf_counter() - started
            rec["steps"] += trainer.step
            out.append(mask_from_scores(magnitude_scores(copy_net, names, masks), target, c.scope))
        return out

    def run(self, ctx):  # noqa: D102
        c, cfg = self.cfg, ctx.config
        net = ctx.new_net()
        names = ctx.prunable(net)
        params = dict(net.named_parameters())
        masks: Masks = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
        spe = math.ceil(len(ctx.data.train_y) / cfg.data.batch_size)
        total = cfg.optim.epochs * spe
        stage_steps = max(1, round(c.isp_main_fraction * spe))
        step, stage, stopped = 0, 0, "reached"
        while 1 - mask_density(masks) < 1 - c.density - CLOSE_ENOUGH:
            if step + stage_steps >= total:
                stopped = "schedule"
                break
            stage += 1
            model = MaskedModel(net, masks)
            res = ctx.train(f"stage{stage}", model, start_step=step, callbacks=[StopAt(step + stage_steps)])
            step = res["step"]
            proposals = self._copies(ctx, net, names, masks, stage, step)
            voted = vote_masks(proposals, c.isp_vote)
            kept = sum(int(m.sum()) for m in voted.values())
            floor = round(c.density * sum(m.numel() for m in masks.values()))
            if kept < floor:  # the vote overshot the target: keep the target count, by votes then |w|
                voted = mask_from_scores(vote_then_magnitude(proposals, net, names, masks), c.density, "global")
            ctx.log({"event": "isp_stage", "stage": stage, "step": step,
                     "copy_densities": [mask_density(m) for m in proposals], "density": mask_density(voted)})
            if mask_density(voted) >= mask_density(masks):
                stopped = "no-progress"
                masks = voted
                break
            masks = voted
        final = mask_from_scores(magnitude_scores(net, names, masks), c.density, c.scope)
        ctx.log_masks("prune", final)
        info: dict[str, Any] = {"stages": stage, "vote": c.isp_vote, "copies": c.isp_copies,
                                "staged_density": mask_density(masks), "oneshot_step": step,
                                "copy_steps": ctx.phases.get("isp-copies", {}).get("steps", 0)}
        if stopped != "reached":
            why = ("a stage pruned nothing (the copies' masks never agreed)" if stopped == "no-progress"
                   else "the next stage would leave no step of the schedule for fine-tuning")
            info["note"] = (f"stages stopped at density {mask_density(masks):.4f}, not within {CLOSE_ENOUGH:g} "
                            f"of the target: {why}; the one-shot step pruned the rest")
            if ctx.note is not None and ctx.is_main:
                ctx.note(f"isp: {info['note']}")
        ctx.extras["isp"] = info
        model = MaskedModel(net, final)
        ctx.train("finetune", model, start_step=step)
        return model
