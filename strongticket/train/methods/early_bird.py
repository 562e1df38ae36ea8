"""Early-Bird tickets (You, Li, Xu, Fu, Wang, Chen, Baraniuk, Wang, Lin 2020, "Drawing Early-Bird Tickets:
Towards More Efficient Training of Deep Networks", ICLR, §3 and Alg. 1).

The dense network trains on the ordinary schedule; at the start of every epoch (epoch 0, the initialisation,
included) a mask at the target density is computed and pushed into a FIFO of the last ``eb_window`` (5)
masks. The ticket is drawn as soon as the FIFO is full and the normalised Hamming distance (the fraction of
entries whose keep/prune decision differs) between the newest mask and every older one is below
``eb_threshold`` (0.1). The pruned network then continues training from the drawn weights, the learning-rate
schedule resuming at the draw epoch (the reference code's ``main_c.py --start-epoch``), so search and
retraining together take ``optim.epochs`` epochs.

Two mask variants (``eb_variant``):

* ``channel`` (the paper's): during the search the network-slimming L1 term (Liu et al. 2017, "Learning
  Efficient Convolutional Networks through Network Slimming", §3) adds ``eb_l1 · sign(γ)`` to the gradient
  of every BatchNorm scale γ; the mask keeps the fraction ``density`` of BatchNorm channels with the largest
  ``|γ|`` (one global threshold). A dropped channel becomes a zeroed output channel of the convolution that
  feeds that BatchNorm, so ``density`` is the fraction of *channels* kept and the fraction of prunable
  *weights* kept (the run summary's ``density``) is whatever those channels hold; layers feeding no
  BatchNorm (the classifier) stay dense. Choice made here: channels are masked rather than physically
  removed, so the BatchNorm shift β of a dropped channel still reaches the next layer as a constant (the
  reference code removes the channel with it).
* ``magnitude``: unstructured masks at ``density`` by ``|w|`` under ``scope`` (what the Instant Soup
  comparison of Jaiswal et al. 2023 calls EarlyBird on transformers); no L1 term.

Choice made here: the search is capped at ``eb_search`` of the schedule; if no ticket is drawn by then, the
mask at the cap is taken and the summary says so (``early_bird.drawn`` false). The per-epoch masks are kept in
``checkpoints/early_bird.safetensors`` so that a killed search resumes with its FIFO intact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.train.loop import Callback
from strongticket.train.masking import MaskedModel, Masks, mask_from_scores
from strongticket.train.methods.base import Method, magnitude_scores
from strongticket.train.rundir import CheckpointError

FIFO_FILE = "checkpoints/early_bird.safetensors"


# --------------------------------------------------------------------------------------- pure functions


def mask_distance(a: Masks, b: Masks) -> float:
    """Normalised Hamming distance: the fraction of entries whose keep/prune decision differs.

    Parameters
    ----------
    a, b : dict of name -> bool tensor
        Masks over the same names and shapes (channel masks ``(C,)`` per BatchNorm, or weight masks).

    Returns
    -------
    float
        In [0, 1]; 0 for identical masks.
    """
    if set(a) != set(b):
        raise InputError(f"masks compared over different tensors: {sorted(set(a) ^ set(b))}")
    total = sum(m.numel() for m in a.values())
    differ = sum(int((a[n].bool() != b[n].bool()).sum()) for n in a)
    return differ / total if total else 0.0


def early_bird_drawn(fifo: Sequence[Masks], threshold: float, window: int = 5) -> bool:
    """The Early-Bird stopping rule: True when ``fifo`` holds ``window`` masks and every distance
    (:func:`mask_distance`) between the newest (``fifo[-1]``) and an older one is below ``threshold``.

    Only the last ``window`` masks count; with fewer, the rule never fires.
    """
    if len(fifo) < window:
        return False
    recent = list(fifo)[-window:]
    return max(mask_distance(recent[-1], m) for m in recent[:-1]) < threshold


def bn_producers(net: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> dict[str, str]:
    """Map each BatchNorm module's name to the name of the convolution/linear layer that feeds it.

    One forward pass in eval mode without gradients (the running statistics are not touched) records the
    execution order; a BatchNorm's producer is the last conv/linear layer run before it (this holds for
    sequential stacks and for ResNet blocks, whose shortcut runs conv then BatchNorm).

    Raises
    ------
    InputError
        A BatchNorm whose producer has a different number of output channels, or none at all.
    """
    order: list[tuple[str, nn.Module]] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: order.append((name, mod)))
             for name, m in net.named_modules()
             if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm))]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    out: dict[str, str] = {}
    last: tuple[str, nn.Module] | None = None
    for name, m in order:
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            last = (name, m)
            continue
        width = None if last is None else getattr(last[1], "out_channels", getattr(last[1], "out_features", None))
        if width != m.num_features:
            raise InputError(f"eb_variant=channel: BatchNorm {name!r} ({m.num_features} channels) follows no "
                             f"layer with as many outputs (got {last[0] if last else 'none'})")
        out[name] = last[0]
    return out


def channel_mask(net: nn.Module, bn_names: Sequence[str], density: float) -> Masks:
    """Keep the fraction ``density`` of all BatchNorm channels with the largest ``|γ|`` (one global ranking).

    Returns ``{bn_name: bool tensor (C,)}`` with exactly ``round(density · ΣC)`` channels kept (at least one).
    """
    modules = dict(net.named_modules())
    return mask_from_scores({n: modules[n].weight.detach().abs() for n in bn_names}, density, "global")


def channel_to_weight_masks(net: nn.Module, chan: Masks, producers: dict[str, str], names: Sequence[str]) -> Masks:
    """Turn channel masks into masks of the prunable tensors ``names``: the producer of a BatchNorm loses the
    rows (output channels) of its dropped channels; every other prunable tensor is kept whole."""
    params = dict(net.named_parameters())
    out = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    for bn, keep in chan.items():
        w = f"{producers[bn]}.weight"
        if w in out:
            shape = (-1,) + (1,) * (out[w].dim() - 1)
            out[w] = out[w] & keep.to(out[w].device).reshape(shape)
    return out


# --------------------------------------------------------------------------------------- the search


class EarlyBirdWatch(Callback):
    """Push a mask into the FIFO at the start of every epoch; stop the phase when the ticket is drawn or
    at the cap. The FIFO is saved to the run directory at each epoch, before the phase's checkpoint."""

    def __init__(self, ctx: Any, make_mask: Any, threshold: float, window: int, cap_epochs: int) -> None:
        self.ctx, self.make_mask = ctx, make_mask
        self.threshold, self.window, self.cap = threshold, window, cap_epochs
        self.fifo: list[tuple[int, Masks]] = []
        self.drawn_epoch: int | None = None
        self.drawn = False
        self.distances: list[float] = []

    def _push(self, epoch: int) -> None:
        self.fifo = [*self.fifo, (epoch, self.make_mask())][-self.window:]
        masks = [m for _, m in self.fifo]
        self.distances = [mask_distance(masks[-1], m) for m in masks[:-1]]
        if early_bird_drawn(masks, self.threshold, self.window):
            self.drawn_epoch, self.drawn = epoch, True
        elif epoch >= self.cap:
            self.drawn_epoch, self.drawn = epoch, False
        self.ctx.log({"event": "early_bird", "epoch": epoch, "distances": self.distances,
                      "drawn": self.drawn})
        self._save()

    def _save(self) -> None:
        if not self.ctx.is_main:
            return
        tensors = {f"{e}/{n}": m for e, masks in self.fifo for n, m in masks.items()}
        meta = {"epochs": ",".join(str(e) for e, _ in self.fifo),
                "drawn_epoch": "" if self.drawn_epoch is None else str(self.drawn_epoch),
                "drawn": str(self.drawn)}
        self.ctx.rundir.save_tensors(FIFO_FILE, tensors, meta)

    def load(self, up_to_epoch: int | None = None) -> None:
        """Restore the FIFO saved up to ``up_to_epoch`` (all of it when None) and the draw, if any."""
        from safetensors import SafetensorError, safe_open

        path = self.ctx.rundir.path / FIFO_FILE
        if not path.is_file():
            return
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read the early-bird search record {FIFO_FILE}: {exc}; pass --overwrite "
                                  "to start over") from None
        epochs = [int(e) for e in meta.get("epochs", "").split(",") if e]
        keep = [e for e in epochs if up_to_epoch is None or e <= up_to_epoch]
        dev = self.ctx.device
        self.fifo = [(e, {k.split("/", 1)[1]: v.to(dev) for k, v in tensors.items() if k.split("/", 1)[0] == str(e)})
                     for e in keep]
        drawn_epoch = int(meta["drawn_epoch"]) if meta.get("drawn_epoch") else None
        if drawn_epoch is not None and (up_to_epoch is None or drawn_epoch <= up_to_epoch):
            self.drawn_epoch, self.drawn = drawn_epoch, meta.get("drawn") == "True"
        masks = [m for _, m in self.fifo]
        self.distances = [mask_distance(masks[-1], m) for m in masks[:-1]] if masks else []

    def on_start(self, trainer) -> None:  # noqa: D102
        if trainer.step == 0:
            self._push(0)  # the paper's first mask is taken at the start of epoch 0, from the initialisation
        else:
            self.load(trainer.epoch)  # a resumed search: masks saved after the checkpoint are recomputed
            if not self.fifo or self.fifo[-1][0] != trainer.epoch:
                # without the FIFO the rule would fire later than in the uninterrupted run: refuse
                raise CheckpointError(f"the early-bird search record {FIFO_FILE} lacks the mask of epoch "
                                      f"{trainer.epoch} the checkpoint needs; pass --overwrite to start over")
        trainer.stop = self.drawn_epoch is not None

    def on_epoch(self, trainer) -> None:  # noqa: D102
        if self.drawn_epoch is None and trainer.step % trainer.steps_per_epoch == 0:
            self._push(trainer.epoch)
        trainer.stop = self.drawn_epoch is not None


class EarlyBird(Method):
    """Draw the ticket when the per-epoch masks stop changing, then train the pruned network on."""

    name = "early-bird"
    paper = "You et al. 2020, Drawing Early-Bird Tickets, §3"

    def check_run(self, config, net):  # noqa: D102
        epochs = config.optim.epochs
        if epochs < 2:
            raise InputError(f"early-bird needs optim.epochs (--epochs) >= 2 (a search, then training of the "
                             f"ticket), got {epochs}")
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        if self.cfg.eb_variant == "channel" and not has_bn:
            raise InputError(f"eb_variant=channel (--eb-variant) needs a model with BatchNorm, got "
                             f"{config.model.model}; use --eb-variant magnitude")

    def run(self, ctx):  # noqa: D102
        c = self.cfg
        epochs = ctx.config.optim.epochs
        cap = min(epochs - 1, max(1, math.floor(c.eb_search * epochs)))
        net = ctx.new_net()
        names = ctx.prunable(net)
        bns = [n for n, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        variant = c.eb_variant or ("channel" if bns else "magnitude")
        hooks = []
        if variant == "channel":
            producers = bn_producers(net, tuple(ctx.input_shape), ctx.device)
            modules = dict(net.named_modules())

            def make_mask() -> Masks:
                return channel_mask(net, bns, c.density)

            def to_weights(chan: Masks) -> Masks:
                return channel_to_weight_masks(net, chan, producers, names)

            if c.eb_l1 > 0:
                # network slimming: the subgradient of eb_l1·|γ| added to every BatchNorm scale's gradient
                for n in bns:
                    w = modules[n].weight
                    hooks.append(w.register_hook(lambda g, w=w: g + c.eb_l1 * torch.sign(w.detach())))
        else:
            def make_mask() -> Masks:
                return mask_from_scores(magnitude_scores(net, names), c.density, c.scope)

            def to_weights(chan: Masks) -> Masks:
                return chan

        watch = EarlyBirdWatch(ctx, make_mask, c.eb_threshold, c.eb_window, cap)
        model = MaskedModel(net)
        try:
            res = ctx.train("search", model, callbacks=[watch])
        finally:
            for h in hooks:
                h.remove()
        if watch.drawn_epoch is None:  # the search phase was finished before a kill: read its record
            watch.load()
        if watch.drawn_epoch is None or not watch.fifo:
            raise CheckpointError(f"early-bird: the search record {FIFO_FILE} is missing or damaged; pass "
                                  "--overwrite to start over")
        masks = to_weights(watch.fifo[-1][1])
        info = {"variant": variant, "drawn": watch.drawn, "drawn_epoch": watch.drawn_epoch, "search_cap": cap,
                "threshold": c.eb_threshold, "window": c.eb_window, "distances": watch.distances}
        if variant == "channel":
            kept = sum(int(m.sum()) for m in watch.fifo[-1][1].values())
            total = sum(m.numel() for m in watch.fifo[-1][1].values())
            info["channel_density"] = kept / total
        if not watch.drawn:
            info["note"] = (f"no Early-Bird ticket within the {cap}-epoch search (distances {watch.distances}); "
                            f"the mask at epoch {cap} was taken")
            if ctx.note is not None and ctx.is_main:
                ctx.note(f"early-bird: {info['note']}")
        ctx.extras["early_bird"] = info
        ctx.log({"event": "early_bird_draw", **info})
        ctx.log_masks("prune", masks)
        model = MaskedModel(net, masks)
        ctx.train("train", model, start_step=res["step"])
        return model
