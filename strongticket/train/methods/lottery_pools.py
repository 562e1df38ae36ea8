"""Lottery Pools (Yin, Liu, Shen, Wang, Pechenizkiy, Mocanu 2023, "Lottery Pools: Winning More by Interpolating
Tickets without Increasing Training or Inference Cost", AAAI, §3 and Alg. 1).

One IMP trajectory (Frankle & Carbin 2019; with rewinding to ``prune.rewind_step`` when it is above 0, else
resetting to the initialisation) produces a trained network at every level: level 0 the dense network, level
r the ticket of round r. Each level's trained weights and mask are kept in the run directory
(``tickets/level<r>.safetensors``). The last level, at ``prune.density``, is the target ticket; it is then
pooled greedily with its neighbours, with no further training:

1. candidates: the other levels ordered by distance from the target, alternating below and above
   (ℓ−1, ℓ+1, ℓ−2, ℓ+2, ...; :func:`candidate_levels`), at most ``pool_candidates`` of them. In one
   trajectory the target is the last level, so there is nothing above it and the candidates are
   ℓ−1, ℓ−2, ...; level 0 (the dense network) is a candidate like the others;
2. for each candidate and each α in ``pool_alphas``: θ ← α θ_candidate + (1 − α) θ_current over every
   parameter (pruned entries are zero in both), re-pruned to ``density`` by magnitude under ``prune.scope``
   (global by default, as in the reference code), BatchNorm statistics re-estimated on the training data
   (``torch.optim.swa_utils.update_bn``) when the model has BatchNorm, then evaluated on the validation
   split;
3. the best α of a candidate is accepted only if it raises the validation accuracy above the best so far
   (strictly); otherwise θ_current is left as it was.

The validation split is ``pool_val`` training images drawn at random (``pool-val`` stream) and removed from
the training data of the whole run, IMP trajectory included, so the acceptance test never sees an image the
tickets were trained on. The test set is used only for reporting.

Choices made here where the paper leaves a step open: per candidate the α's are all tried from the same
θ_current and the best one is the candidate's proposal (rather than accepting the first α that helps, which
would fold the same candidate in twice); a tie does not count as an improvement; the target ticket is
evaluated with the BatchNorm statistics it was trained with.

The run's ``lottery_pools`` summary entry records the target level, the candidates tried, the accepted
(level, α) steps, the number of validation passes (and of BatchNorm passes), and the ticket's and the pooled
network's validation and test accuracy. The pooling's seconds count in the run's phases (``pool``) and so in
its wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.train.config import RunConfig
from strongticket.train.data import Dataset, epoch_batches
from strongticket.train.loop import evaluate
from strongticket.train.masking import MaskedModel, Masks, mask_from_scores
from strongticket.train.methods.imp import IMP

TICKET_FILE = "tickets/level{level}.safetensors"


# --------------------------------------------------------------------------------------- data structures


@dataclass(frozen=True)
class Ticket:
    """A trained network of one IMP level.

    Attributes
    ----------
    level : int
        IMP level (0: the dense network, r: after r pruning rounds).
    weights : dict of name -> tensor
        The network's state_dict with pruned entries zero (parameters and buffers).
    masks : dict of name -> bool tensor
        The level's mask over the prunable tensors (all True at level 0).
    """

    level: int
    weights: dict[str, torch.Tensor]
    masks: Masks


@dataclass(frozen=True)
class Trial:
    """One candidate tried at its best α: its validation accuracy and whether it was accepted."""

    level: int
    alpha: float
    val_accuracy: float
    accepted: bool


@dataclass(frozen=True)
class Pooled:
    """The result of :func:`pool_tickets`.

    Attributes
    ----------
    weights, masks
        The pooled network (at the target's density) and its mask.
    ticket_val_accuracy, val_accuracy : float
        Validation accuracy of the target ticket and of the pooled network (>= the ticket's).
    trials : tuple of Trial
        One per candidate, in the order tried.
    evaluations, bn_updates : int
        Validation passes (the ticket's included) and BatchNorm re-estimation passes done.
    """

    weights: dict[str, torch.Tensor]
    masks: Masks
    ticket_val_accuracy: float
    val_accuracy: float
    trials: tuple[Trial, ...]
    evaluations: int
    bn_updates: int


# --------------------------------------------------------------------------------------- pure functions


def candidate_levels(target: int, levels: Sequence[int], limit: int) -> list[int]:
    """Levels of ``levels`` ordered by distance from ``target``, below first: ℓ−1, ℓ+1, ℓ−2, ℓ+2, ...

    Parameters
    ----------
    target : int
        The target level ℓ (excluded from the result).
    levels : sequence of int
        The levels that exist (in one IMP trajectory: 0 .. ℓ, so only those below ℓ come back).
    limit : int
        At most this many are returned.
    """
    have = set(levels) - {target}
    if not have:
        return []
    reach = max(abs(v - target) for v in have)
    order = [v for d in range(1, reach + 1) for v in (target - d, target + d) if v in have]
    return order[:limit]


def validation_split(n: int, n_val: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` at random into ``(train_idx, val_idx)`` of ``n - n_val`` and ``n_val`` indices.

    Both index tensors are sorted, disjoint and cover ``range(n)``; ``n_val`` must leave at least one image.
    """
    if not 1 <= n_val < n:
        raise InputError(f"prune.pool_val (--pool-val) must be at least 1 and below the {n} training images, "
                         f"got {n_val}")
    perm = torch.randperm(n, generator=generator)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def interpolate(candidate: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """``alpha * candidate + (1 - alpha) * current`` for every floating-point tensor; integer buffers (a
    BatchNorm's batch counter) keep ``current``'s value."""
    return {k: (alpha * candidate[k] + (1 - alpha) * v) if v.is_floating_point() else v.clone()
            for k, v in current.items()}


def reprune(weights: Mapping[str, torch.Tensor], names: Sequence[str], density: float,
            scope: str) -> tuple[dict[str, torch.Tensor], Masks]:
    """Keep the ``density`` fraction of the prunable tensors ``names`` by ``|w|`` under ``scope``; return the
    weights with the pruned entries zeroed and the new mask (exactly ``round(density * total)`` kept)."""
    masks = mask_from_scores({n: weights[n].abs() for n in names}, density, scope)
    out = {k: v.clone() for k, v in weights.items()}
    for n, m in masks.items():
        out[n] = out[n] * m.to(out[n].dtype)
    return out, masks


def pool_tickets(model: MaskedModel, target: Ticket, candidates: Sequence[Ticket], alphas: Sequence[float],
                 density: float, scope: str, score: Callable[[MaskedModel], float],
                 refresh_bn: Callable[[MaskedModel], None] | None = None,
                 on_trial: Callable[[Trial], None] | None = None) -> Pooled:
    """Greedily interpolate ``target`` with each of ``candidates`` (see the module doc); no training.

    Parameters
    ----------
    model : MaskedModel
        A working model of the tickets' architecture; its weights and masks are overwritten, and it ends
        holding the pooled network.
    target : Ticket
        The ticket being improved; its masks name the prunable tensors.
    candidates : sequence of Ticket
        Tried in order.
    alphas : sequence of float
        Interpolation coefficients in (0, 1) tried per candidate (the weight of the candidate).
    density : float
        Density every trial is re-pruned to.
    scope : str
        ``global`` or ``layerwise`` magnitude re-pruning.
    score : callable
        Validation accuracy of the model as it is (higher is better).
    refresh_bn : callable, optional
        Re-estimates the BatchNorm statistics of the model in place before each trial's score (None: the
        model has no BatchNorm).
    on_trial : callable, optional
        Called with each candidate's :class:`Trial` (logging).

    Returns
    -------
    Pooled
        Accepted only on a strict rise of ``score``: its ``val_accuracy`` is never below the ticket's.
    """
    if not alphas:
        raise InputError("prune.pool_alphas (--pool-alphas) must hold at least one coefficient, got none")
    names = list(target.masks)

    def install(weights: Mapping[str, torch.Tensor], masks: Masks) -> None:
        model.net.load_state_dict(weights)
        model.set_masks(masks)

    install(target.weights, target.masks)
    best = score(model)
    ticket_acc = best
    current, current_masks = target.weights, target.masks
    evaluations, bn_updates = 1, 0
    trials = []
    for cand in candidates:
        proposal: tuple[float, float, dict[str, torch.Tensor], Masks] | None = None
        for alpha in alphas:
            weights, masks = reprune(interpolate(cand.weights, current, alpha), names, density, scope)
            install(weights, masks)
            if refresh_bn is not None:
                refresh_bn(model)
                bn_updates += 1
                weights = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
            acc = score(model)
            evaluations += 1
            if proposal is None or acc > proposal[0]:
                proposal = (acc, alpha, weights, masks)
        acc, alpha, weights, masks = proposal
        accepted = acc > best
        if accepted:
            best, current, current_masks = acc, weights, masks
        trial = Trial(cand.level, alpha, acc, accepted)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
    install(current, current_masks)
    return Pooled(current, current_masks, ticket_acc, best, tuple(trials), evaluations, bn_updates)


def has_batchnorm(net: nn.Module) -> bool:
    """Whether ``net`` holds a BatchNorm layer (whose statistics a weight interpolation invalidates)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def bn_refresher(data: Dataset, batch_size: int) -> Callable[[MaskedModel], None]:
    """A function re-estimating a model's BatchNorm statistics over ``data``'s training images, in order
    (one pass, cumulative average, no augmentation: ``torch.optim.swa_utils.update_bn``)."""
    def refresh(model: MaskedModel) -> None:
        batches = (data.train_x[idx] for idx in epoch_batches(len(data.train_y), batch_size, None,
                                                               device=data.device))
        torch.optim.swa_utils.update_bn(batches, model)
    return refresh


# --------------------------------------------------------------------------------------- the method


class LotteryPools(IMP):
    """IMP trajectory on the training data minus a validation split; greedy pooling of its tickets."""

    name = "lottery-pools"
    paper = "Yin et al. 2023, Lottery Pools, §3"

    @property
    def rewinding(self) -> bool:  # type: ignore[override]
        """Rewind to ``rewind_step`` when it is above 0, else reset to the initialisation."""
        return self.cfg.rewind_step > 0

    def check(self) -> None:  # noqa: D102
        if self.cfg.density is not None and self.cfg.density >= 1:
            raise InputError(f"lottery-pools needs a density below 1 (--density): it pools the tickets of an IMP "
                             f"trajectory, got {self.cfg.density}")
        if not self.cfg.pool_alphas:
            raise InputError("prune.pool_alphas (--pool-alphas) must hold at least one coefficient in (0, 1), "
                             "got none")

    def check_data(self, config: RunConfig, n_train: int) -> None:  # noqa: D102
        # the split itself (validation_split) would refuse it too, but only inside run(), after the run
        # directory was made
        if self.cfg.pool_val >= n_train:
            where = "data.train_subset" if config.data.train_subset else f"the {config.data.dataset} training set"
            raise InputError(f"prune.pool_val (--pool-val) must be below the {n_train} training images of {where} "
                             f"(at least one must remain for training), got {self.cfg.pool_val}")

    def level_done(self, ctx, level: int, model: MaskedModel) -> None:  # noqa: D102
        names = ctx.prunable(model.net)
        masks = model.masks or {n: torch.ones_like(model.params[n], dtype=torch.bool) for n in names}
        ticket = Ticket(level, model.effective_state_dict(), {n: m.clone() for n, m in masks.items()})
        self._tickets[level] = ticket
        if ctx.is_main:
            ctx.rundir.save_tensors(TICKET_FILE.format(level=level),
                                    {**{f"net.{k}": v for k, v in ticket.weights.items()},
                                     **{f"mask.{k}": v for k, v in ticket.masks.items()}},
                                    {"format": "strongticket-imp-level", "level": str(level)})

    def run(self, ctx):  # noqa: D102
        c = self.cfg
        data = ctx.data
        train_idx, val_idx = validation_split(len(data.train_y), c.pool_val, ctx.generator("pool-val"))
        train_idx, val_idx = train_idx.to(data.device), val_idx.to(data.device)
        val_x, val_y = data.train_x[val_idx], data.train_y[val_idx]
        # every phase of the run (ctx.train builds its Trainer on ctx.data) trains on the rest only
        ctx.data = replace(data, train_x=data.train_x[train_idx], train_y=data.train_y[train_idx])
        self._tickets: dict[int, Ticket] = {}
        model = super().run(ctx)

        started = time.perf_counter()
        target = max(self._tickets)
        levels = candidate_levels(target, list(self._tickets), c.pool_candidates)
        amp = ctx.config.optim.amp
        ticket_test = evaluate(model, ctx.data.test_x, ctx.data.test_y, amp=amp)["accuracy"]

        def score(m: MaskedModel) -> float:
            return evaluate(m, val_x, val_y, amp=amp)["accuracy"]

        def log_trial(t: Trial) -> None:
            ctx.log({"event": "pool_trial", "level": t.level, "alpha": t.alpha, "val_accuracy": t.val_accuracy,
                     "accepted": t.accepted})

        refresh = bn_refresher(ctx.data, ctx.config.data.batch_size) if has_batchnorm(model.net) else None
        pooled = pool_tickets(model, self._tickets[target], [self._tickets[v] for v in levels], c.pool_alphas,
                              c.density, c.scope, score, refresh, log_trial)
        pooled_test = evaluate(model, ctx.data.test_x, ctx.data.test_y, amp=amp)["accuracy"]
        ctx.log_masks("pool", pooled.masks)
        accepted = [t for t in pooled.trials if t.accepted]
        info: dict[str, Any] = {
            "target_level": target, "candidates": levels, "alphas": list(c.pool_alphas),
            "accepted_levels": [t.level for t in accepted], "accepted_alphas": [t.alpha for t in accepted],
            "evaluations": pooled.evaluations, "bn_updates": pooled.bn_updates, "val_images": len(val_y),
            "ticket_val_accuracy": pooled.ticket_val_accuracy, "pooled_val_accuracy": pooled.val_accuracy,
            "ticket_test_accuracy": ticket_test, "pooled_test_accuracy": pooled_test,
        }
        ctx.log({"event": "pool", **{k: v for k, v in info.items() if not isinstance(v, list)}})
        ctx.extras["lottery_pools"] = info
        ctx.phases["pool"] = {"seconds": time.perf_counter() - started, "steps": 0,
                              "evaluations": pooled.evaluations}
        return model
