"""One training loop; evaluation, checkpoints, logging, early stopping and pruning schedules are callbacks.

The loop (:class:`Trainer`) is open_lth's ``training/train.py`` reduced to its core: for each step, gather a
batch from device-resident tensors, augment it on the device, forward through the :class:`MaskedModel`
(the one place masks are enforced), step the optimiser, then call the callbacks. The learning rate is a
pure function of the step (:func:`lr_factor`), the data order of epoch ``e`` comes from a generator seeded
with ``derive_seed(seed, "data", e)`` and the augmentation of step ``t`` from ``derive_seed(seed, "aug", t)``,
so resuming at a checkpoint needs only the weights, the optimiser state and the step number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from strongticket.errors import InputError
from strongticket.train.config import OptimConfig, derive_seed
from strongticket.train.data import Dataset, augment_batch, epoch_batches
from strongticket.train.masking import MaskedModel


def lr_factor(cfg: OptimConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Return the learning-rate multiplier at ``step`` (warm-up × schedule), a pure function of the step."""
    f = 1.0
    if cfg.schedule == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    elif cfg.schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        f = cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        f *= (step + 1) / cfg.warmup_steps
    return f


def make_optimizer(cfg: OptimConfig, params: Sequence[Any]) -> torch.optim.Optimizer:
    """Return SGD (with optional momentum/Nesterov) or Adam over ``params``, with weight decay from ``cfg``."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
             amp: bool = False) -> dict[str, float]:
    """Return ``{"loss", "accuracy"}`` of ``model`` on images ``x (N, C, H, W)`` and labels ``y (N,)``."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for idx in epoch_batches(len(y), batch_size, None, device=x.device):
        with _autocast(x.device, amp):
            out = model(x[idx])
        loss += F.cross_entropy(out.float(), y[idx], reduction="sum")
        correct += (out.argmax(1) == y[idx]).sum()
    model.train(was_training)
    n = max(1, len(y))
    return {"loss": float(loss) / n, "accuracy": float(correct) / n}


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


class Callback:
    """A hook into the loop. Callbacks with state to restore on resume implement the two ``*_state`` methods."""

    def on_start(self, trainer: Trainer) -> None:
        """Called once before the first step (also after a resume)."""

    def on_backward(self, trainer: Trainer) -> None:
        """Called after the backward pass, before the optimiser step: the place to edit gradients
        (Global Sparse Momentum's passive weights, a regulariser's gradient, BiP's implicit term)."""

    def on_step(self, trainer: Trainer) -> None:
        """Called after every optimiser step (``trainer.step`` is the number of steps done)."""

    def on_epoch(self, trainer: Trainer) -> None:
        """Called after every completed epoch."""

    def on_end(self, trainer: Trainer) -> None:
        """Called once when the loop finishes (end of schedule or early stop)."""

    def state(self) -> dict[str, Any]:
        """JSON-ready state saved with each checkpoint."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state`."""


@dataclass
class Trainer:
    """The loop's state and its single :meth:`run` method.

    Attributes
    ----------
    model : MaskedModel
        The network with its masks (wrap it in DDP via ``forward_model`` for several processes).
    data : Dataset
        Device-resident tensors.
    cfg : OptimConfig
        Optimiser and schedule.
    trainable : list of tensors, or of parameter-group dicts
        Parameters the optimiser updates (edge-popup: the scores only). A group dict may carry ``lr_scale``:
        its learning rate is the schedule's times that factor (BiP's separate score learning rate).
    seed, batch_size, augment
        Data-order / augmentation seed, per-process batch size, augmentation name.
    step : int
        Optimiser steps done so far (a resumed or rewound run starts above 0).
    """

    model: MaskedModel
    data: Dataset
    cfg: OptimConfig
    trainable: list[Any]
    seed: int
    batch_size: int
    augment: str = "none"
    callbacks: list[Callback] = field(default_factory=list)
    step: int = 0
    rank: int = 0
    world_size: int = 1
    forward_model: nn.Module | None = None
    stop: bool = False
    last_eval: dict[str, float] = field(default_factory=dict)
    train_loss: float = float("nan")
    optimizer: torch.optim.Optimizer = field(init=False)

    def __post_init__(self) -> None:
        self.optimizer = make_optimizer(self.cfg, self.trainable)
        self.steps_per_epoch = math.ceil(len(self.data.train_y) / (self.batch_size * self.world_size))
        self.total_steps = self.cfg.epochs * self.steps_per_epoch
        self.started = time.perf_counter()

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.steps_per_epoch

    @property
    def lr(self) -> float:
        """Learning rate of the next step."""
        return self.cfg.lr * lr_factor(self.cfg, self.step, self.total_steps, self.steps_per_epoch)

    def run(self) -> None:
        """Train from ``self.step`` to the end of the schedule (or an early stop), calling the callbacks."""
        model = self.forward_model or self.model
        model.train()
        dev = self.data.device
        for cb in self.callbacks:
            cb.on_start(self)
        while self.step < self.total_steps and not self.stop:
            epoch, skip = divmod(self.step, self.steps_per_epoch)
            g = torch.Generator().manual_seed(derive_seed(self.seed, "data", epoch))
            loss_sum = torch.zeros((), device=dev)
            seen = 0
            for i, idx in enumerate(epoch_batches(len(self.data.train_y), self.batch_size, g, device=dev,
                                                  rank=self.rank, world_size=self.world_size)):
                if i < skip:
                    continue
                x, y = self.data.train_x[idx], self.data.train_y[idx]
                if self.augment != "none":
                    x = augment_batch(x, self.augment, torch.Generator().manual_seed(
                        derive_seed(self.seed, "aug", self.step, self.rank)))
                for group in self.optimizer.param_groups:
                    group["lr"] = self.lr * group.get("lr_scale", 1.0)
                with _autocast(dev, self.cfg.amp):
                    out = model(x)
                loss = F.cross_entropy(out.float(), y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for cb in self.callbacks:
                    cb.on_backward(self)
                self.optimizer.step()
                loss_sum += loss.detach() * len(y)
                seen += len(y)
                self.step += 1
                for cb in self.callbacks:
                    cb.on_step(self)
                if self.stop or self.step >= self.total_steps:
                    break
            self.train_loss = float(loss_sum) / max(1, seen)
            if self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps:
                for cb in self.callbacks:
                    cb.on_epoch(self)
        for cb in self.callbacks:
            cb.on_end(self)


class EarlyStop(Callback):
    """Stop when the test accuracy of the last ``patience`` evaluations has not beaten the best one."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -1.0
        self.bad = 0
        self.seen_step = -1

    def on_epoch(self, trainer: Trainer) -> None:  # noqa: D102
        acc = trainer.last_eval.get("accuracy")
        if acc is None or trainer.last_eval.get("step") == self.seen_step:
            return
        self.seen_step = trainer.last_eval["step"]
        if acc > self.best:
            self.best, self.bad = acc, 0
        else:
            self.bad += 1
            trainer.stop = self.bad >= self.patience

    def state(self) -> dict[str, Any]:  # noqa: D102
        return {"best": self.best, "bad": self.bad, "seen_step": self.seen_step}

    def load_state(self, state: dict[str, Any]) -> None:  # noqa: D102
        self.best, self.bad, self.seen_step = state["best"], state["bad"], state["seen_step"]


def fit(model: nn.Module, data: Dataset, optim: OptimConfig, *, batch_size: int | None = None, seed: int = 0,
        device: str | torch.device = "cpu") -> nn.Module:
    """Train ``model`` in place with :class:`Trainer` (no run directory, no callbacks); return it in eval mode.

    The library's one training loop for callers that only need trained weights (experiments' targets, the
    demo): the same optimiser, schedule and data order as a ``strongticket train`` run.

    Parameters
    ----------
    model : nn.Module
        Network mapping ``(B, C, H, W)`` images to ``(B, num_classes)`` logits; moved to ``device``.
    data : Dataset
        Training tensors ``data.train_x (N, C, H, W)``, ``data.train_y (N,)``; moved to ``device``.
        The dataset's standard augmentation is *not* applied (``fit`` is deterministic given ``seed``).
    optim : OptimConfig
        Optimiser and schedule; ``optim.epochs`` passes over the data. With ``batch_size=None`` one epoch is
        one full-batch step, so ``epochs`` counts optimiser steps.
    batch_size : int or None
        Examples per step; None means the whole training set (full-batch gradient descent).
    seed : int
        Seeds the data order: epoch ``e`` is a permutation from ``derive_seed(seed, "data", e)``.
    device : str or torch.device
        Where training runs.

    Returns
    -------
    nn.Module
        ``model`` itself, trained, in eval mode.

    Raises
    ------
    InputError
        ``batch_size`` not a positive integer, ``optim`` not an :class:`OptimConfig` (whose own checks ran
        when it was built), or no training data.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise InputError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if not isinstance(optim, OptimConfig):
        raise InputError(f"optim must be an OptimConfig, got {type(optim).__name__}")
    dev = torch.device(device)
    data = data.to(dev)
    model.to(dev)
    n = len(data.train_y)
    if n < 1:
        raise InputError("data must hold at least one training example, got 0")
    wrapped = MaskedModel(model)
    trainer = Trainer(wrapped, data, optim, [p for p in model.parameters() if p.requires_grad], seed=seed,
                      batch_size=batch_size or n)
    trainer.run()
    return model.eval()

