"""GEM-MINER: rare gems found in a frozen random network by score search with iterative freezing, then
fine-tuned (Sreenivasan, Sohn, Yang, Grinde, Nagle, Wang, Xing, Lee, Papailiopoulos 2022, "Rare Gems: Finding
Lottery Tickets at Initialization", NeurIPS, §3 and Alg. 1).

Search (phase ``search``, ``optim.epochs`` epochs, at the learning rate ``gem_score_lr`` and SGD momentum
``gem_momentum``; unset, ``optim``'s). The weights stay at their random initial values (default
``init=signed_constant``: ±sqrt(2/fan_in), drawn like a construction's random network and recorded in
``summary.json`` as ``random_network``, as edge-popup does). Each prunable weight has one score p in [0, 1],
initialised U(0, 1) from the ``scores`` stream. The forward uses the weight times ``1[p > 0.5]`` times a fixed
0/1 mask of the weights already frozen (:class:`~strongticket.train.masking.MaskedModel` with
``score_rule="round"``); the backward is straight-through to p. The scores' gradient gets the regulariser's
gradient (``gem_regulariser``: ``l2`` adds ``2·gem_reg·p``, the gradient of ``gem_reg·‖p‖²``; ``l1`` adds
``gem_reg·sign(p)``), and after every step p is clamped to [0, 1] (projected SGD).

Iterative freezing. At the end of epochs P, 2P, ..., KP (P = ``gem_period``, K = ⌊(E − 1)/P⌋, E =
``optim.epochs``: every freezing leaves at least one epoch of search after it) the globally lowest scores of
the still-active weights are frozen for good: their mask entry becomes 0, their score stops moving (no
gradient, momentum cleared) and they never come back. The paper freezes a fraction r = 1 − d^(1/K) of the
active weights each time (d = ``density``); here the i-th freezing keeps exactly ``round(N · d^(i/K))`` of
the N prunable weights active, the same geometric schedule with the rounding fixed so that the last
freezing lands on ``round(N · d)`` exactly.

The found mask (choice made here, the paper leaves it open). After the search, the mask is the global top
``round(N · d)`` of p among the weights never frozen. After K ≥ 1 freezings that is every active weight,
including the active weights whose p had been rounded to 0 (the reference code's "unflag" option), so the
density is exact; with K = 0 (E ≤ P) nothing was frozen and the mask is the plain global top-density of p.
How many active weights the rounding had switched off is recorded (``gem_miner.rounded_out``), as is the
search's own accuracy with rounding (``gem_miner.search_accuracy``).

The found mask on the random weights is a strong ticket; its test accuracy is ``strong_ticket_test_accuracy``
(and ``mask.safetensors`` with ``random_network`` regenerates it). With ``gem_finetune`` the weights of the
found mask are then trained (phase ``finetune``, at the learning rate ``gem_finetune_lr``, unset ``optim.lr``;
the reference code searches at 0.1 and fine-tunes at 0.01, both with momentum 0.9), and, for the comparison the
paper was written for, random masks with the same number of weights kept in every tensor (drawn from the
``random-control`` stream) are trained from a fresh ``init`` draw on the same schedule and rate (phase
``random-control``): ``random_control_test_accuracy``. The run's ``test_accuracy`` is the fine-tuned ticket's
(the strong ticket's without ``gem_finetune``). Either way ``strongticket export`` writes the strong ticket
(the found mask on the regenerated random weights), never the fine-tuned network, whose weights were trained.

Resume. The freezing record (the freezing index of every frozen weight) is written to
``checkpoints/gem_miner.safetensors`` at each freezing, before the phase's checkpoint; a resumed search keeps
the freezings up to its checkpoint's epoch and restores the random weights and the fixed masks from them.
Refused: ``scope=layerwise`` (the freezing is one global ranking) and ``--init-from`` (the weights must be
the random ones).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from strongticket.errors import InputError
from strongticket.train.loop import Callback, Trainer, evaluate
from strongticket.train.masking import MaskedModel, Masks
from strongticket.train.methods.base import Method
from strongticket.train.methods.phase_optim import check_momentum, phase_params, phase_settings
from strongticket.train.rundir import CheckpointError

FREEZE_FILE = "checkpoints/gem_miner.safetensors"


# --------------------------------------------------------------------------------------- pure functions


def freeze_epochs(epochs: int, period: int) -> list[int]:
    """Epochs at whose end a freezing happens: ``[P, 2P, ..., K·P]`` with ``K = ⌊(epochs − 1) / P⌋``.

    Every freezing is followed by at least one epoch of search (Sreenivasan et al. 2022's schedule).

    >>> freeze_epochs(10, 2)
    [2, 4, 6, 8]
    >>> freeze_epochs(3, 5)
    []
    """
    if epochs < 1 or period < 1:
        raise InputError(f"epochs and period must be positive integers, got {epochs} and {period}")
    return [period * i for i in range(1, (epochs - 1) // period + 1)]


def active_counts(total: int, density: float, freezings: int) -> list[int]:
    """Weights left active after each freezing: ``round(total · density^(i/K))`` for ``i = 1..K``.

    The geometric schedule of the paper (a constant fraction ``1 − density^(1/K)`` of the active weights frozen
    each time) with the rounding done on the counts, so the last entry is exactly ``max(1, round(total ·
    density))``, the count :func:`~strongticket.train.masking.mask_from_scores` keeps. Non-increasing.
    """
    if not 0 < density <= 1:
        raise InputError(f"density must be in (0, 1], got {density}")
    final = max(1, int(round(density * total)))
    out = [max(final, int(round(total * density ** (i / freezings)))) for i in range(1, freezings + 1)]
    if out:
        out[-1] = final
    for i in range(1, len(out)):  # rounding can never make a later count larger, but keep it monotone anyway
        out[i] = min(out[i], out[i - 1])
    return out


def top_active(scores: Mapping[str, torch.Tensor], active: Mapping[str, torch.Tensor], keep: int) -> Masks:
    """The ``keep`` highest scores among the ``active`` entries, one ranking over all tensors.

    Parameters
    ----------
    scores : dict of name -> float tensor
        The scores p (any shape per name).
    active : dict of name -> bool tensor
        Entries that may be kept (same names and shapes); inactive entries are never kept.
    keep : int
        How many entries to keep; must not exceed the active count.

    Returns
    -------
    dict of name -> bool tensor
        Exactly ``keep`` True entries, all of them active (ties broken by ``topk``).
    """
    names = list(scores)
    n_active = sum(int(active[n].sum()) for n in names)
    if not 0 <= keep <= n_active:
        raise InputError(f"keep must be in [0, {n_active}] (the active entries), got {keep}")
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    ok = torch.cat([active[n].reshape(-1).to(flat.device) for n in names])
    flat = torch.where(ok, flat, torch.full_like(flat, float("-inf")))
    kept = torch.zeros_like(ok)
    kept[torch.topk(flat, keep, sorted=False).indices] = True
    out: Masks = {}
    start = 0
    for n in names:
        k = scores[n].numel()
        out[n] = kept[start:start + k].reshape(scores[n].shape).to(scores[n].device)
        start += k
    return out


def penalty_grad(p: torch.Tensor, coefficient: float, kind: str) -> torch.Tensor:
    """Gradient of the score regulariser: ``l2``: ``coefficient·‖p‖²`` → ``2·coefficient·p``; ``l1``:
    ``coefficient·‖p‖₁`` → ``coefficient·sign(p)`` (0 at p = 0)."""
    if kind == "l2":
        return 2.0 * coefficient * p
    if kind == "l1":
        return coefficient * torch.sign(p)
    raise InputError(f"gem_regulariser must be l2 or l1, got {kind!r}")


def random_masks_like(masks: Mapping[str, torch.Tensor], generator: torch.Generator) -> Masks:
    """Uniformly random masks keeping, in every tensor, exactly as many entries as ``masks`` does.

    The random-sparse control at the same per-layer densities; positions are drawn on the CPU from
    ``generator``, tensor by tensor in the order of ``masks``.
    """
    out: Masks = {}
    for n, m in masks.items():
        k = int(m.sum())
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=generator)[:k]] = True
        out[n] = flat.reshape(m.shape).to(m.device)
    return out


# --------------------------------------------------------------------------------------- the search


class GemFreezing(Callback):
    """The search's hooks: regulariser gradient, projection onto [0, 1], and the iterative freezing.

    ``frozen_at[name]`` holds, per prunable entry, 0 while it is active and ``i`` once the i-th freezing froze
    it; the fixed masks of the model are ``frozen_at == 0``.
    """

    def __init__(self, ctx: Any, model: MaskedModel, names: Sequence[str], initial: Mapping[str, torch.Tensor],
                 epochs: Sequence[int], counts: Sequence[int], reg: float, kind: str) -> None:
        self.ctx, self.model, self.names = ctx, model, list(names)
        self.initial = initial
        self.epochs, self.counts = list(epochs), list(counts)
        self.reg, self.kind = reg, kind
        self.total = sum(model.params[n].numel() for n in self.names)
        self.frozen_at = {n: torch.zeros(model.params[n].shape, dtype=torch.int32, device=model.params[n].device)
                          for n in self.names}

    # state -----------------------------------------------------------------------------------------
    @property
    def active(self) -> Masks:
        """The entries not frozen yet (bool, per prunable tensor)."""
        return {n: f == 0 for n, f in self.frozen_at.items()}

    def score(self, name: str) -> torch.Tensor:
        """The trainable score tensor p of prunable tensor ``name``."""
        return self.model.scores[self.model._score_keys[name]]

    def done_by(self, epoch: int) -> int:
        """Number of freezings that happen at or before the end of ``epoch``."""
        return sum(1 for e in self.epochs if e <= epoch)

    def restore(self, freezings: int) -> None:
        """Install the state after the first ``freezings`` freezings, from the run directory's record.

        The random weights are reset to their initial values and the fixed masks to the active entries
        (a phase checkpoint stores the product of fixed and rounded masks, and loading it zeroes the weights
        the rounding had switched off; both are undone here).
        """
        if freezings > 0:
            saved = self.ctx.rundir.load_tensors(FREEZE_FILE)
            if saved is None or set(saved) != set(self.names):
                raise CheckpointError(f"the gem-miner freezing record {FREEZE_FILE} is missing or damaged; pass "
                                      "--overwrite to start over")
            recorded = max(int(v.max()) for v in saved.values()) if saved else 0
            if recorded < freezings:
                raise CheckpointError(f"the gem-miner freezing record {FREEZE_FILE} holds {recorded} freezings, "
                                      f"the checkpoint needs {freezings}; pass --overwrite to start over")
            # freezings recorded after the checkpoint (a kill in between) are undone: they happen again
            self.frozen_at = {n: torch.where(v > freezings, 0, v).to(torch.int32).to(self.frozen_at[n].device)
                              for n, v in saved.items()}
        else:
            self.frozen_at = {n: torch.zeros_like(f) for n, f in self.frozen_at.items()}
        params = dict(self.model.net.named_parameters())
        with torch.no_grad():
            for k, v in self.initial.items():
                params[k].copy_(v)
        self.model.set_masks(self.active)

    def _save(self) -> None:
        if self.ctx.is_main:
            self.ctx.rundir.save_tensors(FREEZE_FILE, self.frozen_at, {"format": "strongticket-gem-miner"})

    # hooks -----------------------------------------------------------------------------------------
    def on_start(self, trainer: Trainer) -> None:  # noqa: D102
        self.restore(self.done_by(trainer.epoch))

    def on_backward(self, trainer: Trainer) -> None:  # noqa: D102
        active = self.active
        for n in self.names:
            p = self.score(n)
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            pen = penalty_grad(p.detach(), self.reg, self.kind) if self.reg > 0 else 0.0
            # frozen scores get no gradient at all: they neither influence the loss nor move
            p.grad = (g + pen) * active[n]

    @torch.no_grad()
    def on_step(self, trainer: Trainer) -> None:  # noqa: D102
        for n in self.names:
            self.score(n).clamp_(0.0, 1.0)  # projected SGD onto [0, 1]

    def on_epoch(self, trainer: Trainer) -> None:  # noqa: D102
        if trainer.step % trainer.steps_per_epoch or trainer.epoch not in self.epochs:
            return
        i = self.epochs.index(trainer.epoch) + 1
        scores = {n: self.score(n) for n in self.names}
        before = self.active
        keep = top_active(scores, before, self.counts[i - 1])
        with torch.no_grad():
            for n in self.names:
                newly = before[n] & ~keep[n]
                self.frozen_at[n][newly] = i
                p = scores[n]
                for v in trainer.optimizer.state.get(p, {}).values():
                    if torch.is_tensor(v) and v.shape == p.shape:
                        v.mul_(keep[n])  # no momentum carries a frozen score on
        self.model.set_masks(keep)  # zeroes the frozen weights for good
        self._save()
        rounded_in = sum(int((keep[n] & (scores[n].detach() > 0.5)).sum()) for n in self.names)
        self.ctx.log({"event": "gem_freeze", "epoch": trainer.epoch, "freezing": i, "active": self.counts[i - 1],
                      "active_density": self.counts[i - 1] / self.total, "rounded_in": rounded_in})


class GemMiner(Method):
    """Score search on frozen random weights with iterative freezing, then fine-tuning and the random control."""

    name = "gem-miner"
    paper = "Sreenivasan et al. 2022, Rare Gems: Finding Lottery Tickets at Initialization, §3"
    default_scope = "global"
    default_init = "signed_constant"
    # the search runs on the random initialisation (its mask is a strong ticket) and the fine-tuning starts from
    # it: pre-trained weights would never be used, so runs and comparisons refuse them up front
    keeps_random_weights = True

    def check(self) -> None:  # noqa: D102
        if self.cfg.scope == "layerwise":
            raise InputError("gem-miner freezes the globally lowest scores: prune.scope (--scope) must be global, "
                             "got layerwise")

    def check_run(self, config, net) -> None:  # noqa: D102
        if config.model.init_from is not None:
            raise InputError("--init-from does not apply to --method gem-miner: the search runs on the random "
                             f"initialisation (a strong ticket), got {config.model.init_from!r}")
        check_momentum(config.optim, self.cfg.gem_momentum, "prune.gem_momentum (--gem-momentum)")

    def run(self, ctx):  # noqa: D102
        c = self.cfg
        net = ctx.new_net()
        ctx.record_random_network(net)
        names = ctx.prunable(net)
        params = dict(net.named_parameters())
        initial = {k: v.detach().clone() for k, v in params.items()}
        g = ctx.generator("scores")
        scores = {n: torch.rand(params[n].shape, generator=g).to(params[n].device) for n in names}
        for p in net.parameters():
            p.requires_grad_(False)
        total = sum(params[n].numel() for n in names)
        epochs = freeze_epochs(ctx.config.optim.epochs, c.gem_period)
        counts = active_counts(total, c.density, len(epochs))
        model = MaskedModel(net, {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}, scores=scores,
                            score_rule="round")
        freezer = GemFreezing(ctx, model, names, initial, epochs, counts, c.gem_reg, c.gem_regulariser)
        optim = ctx.config.optim
        res = ctx.train("search", model, callbacks=[freezer],
                        trainable=phase_params(list(model.scores.values()), optim, lr=c.gem_score_lr,
                                               momentum=c.gem_momentum))

        # the state at the end of the search (also when the phase was loaded finished, without running hooks)
        steps_per_epoch = math.ceil(len(ctx.data.train_y) / ctx.config.data.batch_size)  # as the Trainer counts
        last_epoch = int(res.get("step", 0)) // steps_per_epoch
        done = freezer.done_by(last_epoch)
        freezer.restore(done)
        active = freezer.active
        keep = max(1, int(round(c.density * total)))
        p = {n: freezer.score(n).detach() for n in names}
        found = top_active(p, active, keep)
        rounded_out = sum(int((active[n] & (p[n] <= 0.5)).sum()) for n in names)

        # the strong ticket: the found mask on the random weights
        ticket = MaskedModel(net, found)
        ctx.log_masks("final", found)
        strong = evaluate(ticket, ctx.data.test_x, ctx.data.test_y, amp=ctx.config.optim.amp)
        ctx.log({"event": "gem_ticket", "test_accuracy": strong["accuracy"], "test_loss": strong["loss"],
                 "density": keep / total, "rounded_out": rounded_out})
        info: dict[str, Any] = {
            "freeze_epochs": epochs, "active_counts": counts, "freezings": done, "rounded_out": rounded_out,
            "regulariser": c.gem_regulariser, "reg": c.gem_reg, "search_accuracy": res.get("accuracy"),
            **{f"search_{k}": v for k, v in phase_settings(optim, lr=c.gem_score_lr, momentum=c.gem_momentum).items()},
            "finetune_lr": phase_settings(optim, lr=c.gem_finetune_lr)["lr"] if c.gem_finetune else None,
        }
        if done < len(epochs):
            info["note"] = (f"the search stopped after {done} of {len(epochs)} freezings; the mask is the top "
                            f"{keep} scores of the {sum(int(a.sum()) for a in active.values())} active weights")
        ctx.extras["gem_miner"] = info
        ctx.extras["strong_ticket_test_accuracy"] = strong["accuracy"]
        if not c.gem_finetune:
            return ticket

        for q in net.parameters():
            q.requires_grad_(True)
        tuned = ctx.train("finetune", ticket, trainable=phase_params(
            [q for q in ticket.parameters() if q.requires_grad], optim, lr=c.gem_finetune_lr))
        ctx.extras["finetuned_test_accuracy"] = tuned.get("accuracy")

        control_masks = random_masks_like(found, ctx.generator("random-control"))
        ctx.log_masks("random-control", control_masks)
        control = MaskedModel(ctx.new_net("random-control-init"), control_masks)
        rc = ctx.train("random-control", control, trainable=phase_params(
            [q for q in control.parameters() if q.requires_grad], optim, lr=c.gem_finetune_lr))
        ctx.extras["random_control_test_accuracy"] = rc.get("accuracy")
        return ticket
