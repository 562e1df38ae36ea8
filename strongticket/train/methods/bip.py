"""BiP: pruning as a bi-level optimisation problem (Zhang, Yao, Ram, Zhao, Chen, Hong, Wang, Liu 2022,
"Advancing Model Pruning via Bi-level Optimization", NeurIPS, §3-§4; unstructured and channel variants).

The problem is

::

    min_{m in S} ℓ(m ⊙ θ*(m))   subject to   θ*(m) = argmin_θ ℓ(m ⊙ θ) + (γ/2) ||θ||²,

with ``S`` the binary masks at the target density: the upper level chooses the mask, the lower level retrains the
weights under it. As implemented:

1. A dense phase (``dense``) trains the network on the ordinary schedule, unless ``model.init_from`` names a
   finished run: then the network from :meth:`RunContext.new_net` already holds its pre-trained weights and the
   dense phase is skipped (its cost is not counted in this run's wall time).
2. One score per prunable weight, initialised to the trained weight itself (``s = θ``, a copy), so the first
   mask is exactly the global magnitude mask of the trained network. The authors' released code
   (OPTML-Group/BiP) with ``scaled_score_init`` makes the same assignment, unscaled
   (``popup_scores.data = weight.data``, which in PyTorch also makes the two share storage, so there every
   weight update moves the score too and back: here they are separate tensors). HYDRA's per-layer
   rescaling of the same initialisation (by ``sqrt(6/fan_in)/max|w|``)
   is not used: under a global top-k it would change the ranking across layers.
3. :class:`~strongticket.train.masking.MaskedModel` with ``score_rule="global-topk"`` (``scope=layerwise``:
   ``topk``, the same density per tensor): every forward keeps the top-``density`` fraction of ``|s|`` and the
   backward passes the gradient straight through to ``s``.
4. Phase ``bip``: one optimiser over two parameter groups, the network's parameters (weights, biases,
   BatchNorm) at ``optim.lr`` and the scores at ``bip_score_lr`` (the group's ``lr_scale`` is
   ``bip_score_lr / optim.lr``; both follow the schedule). Steps alternate on consecutive, hence different,
   batches (:class:`Bilevel`): an even step (0, 2, ...) is a lower-level step (an SGD step on the network with
   the mask fixed), an odd step an upper-level step on the scores with the implicit-gradient correction
   (:func:`implicit_score_gradient`). So a BiP epoch of T steps is ⌈T/2⌉ weight steps and ⌊T/2⌋ score steps,
   each one forward and one backward; the forward also ranks every score (the global top-k), which made a
   LeNet-300-100 step on a CPU about three times as long as a dense one.
5. The final mask is the global top-k of ``|s|`` (:func:`~strongticket.train.masking.mask_from_scores`:
   exactly ``round(density · total)`` weights); with ``bip_finetune`` the weights under it are fine-tuned for
   one more phase (``finetune``), otherwise they keep the values the lower level gave them.

**Skipping a level without momentum leaks.** On each step the gradients of the level that does not move are set
to ``None``, not to zero: ``torch.optim.SGD`` and ``Adam`` skip a parameter whose ``grad`` is ``None`` entirely,
whereas a zero gradient would still move it by its momentum buffer and its weight decay.

**The implicit gradient, derived.** Write ``z = m ⊙ θ`` and ``g = ∇_z ℓ(z)``. Because ``ℓ`` depends on ``m`` and
``θ`` only through their product (the bi-linear structure), ``∇_θ ℓ = m ⊙ g`` and ``∇_m ℓ = θ ⊙ g``. The
lower level's stationarity condition is ``m ⊙ g(m ⊙ θ*) + γ θ* = 0``; differentiating it in ``m`` gives
``(∇²_θθ ℓ + γ I) dθ*/dm = -∇²_θm ℓ``, with ``∇²_θm ℓ = diag(g) + diag(m) H diag(θ)`` and
``∇²_θθ ℓ = diag(m) H diag(m)``, ``H = ∇²_z ℓ``. Under the paper's Hessian-free assumption (``H ≈ 0``),
``dθ*/dm = -(1/γ) diag(g)``, and the chain rule gives the upper-level gradient

::

    dℓ(m ⊙ θ*(m))/dm = ∇_m ℓ - (1/γ) g ⊙ ∇_θ ℓ = ∇_m ℓ - (1/γ) m ⊙ g² = ∇_m ℓ - (1/γ) (∇_θ ℓ)²,

the last step because ``m`` is 0/1 in the forward pass (a kept entry has ``∇_θ ℓ = g``, a pruned one 0). So
the correction on the mask is ``-bip_implicit · (∂ℓ/∂θ)²`` (``bip_implicit`` plays ``1/γ``), computed from the
network's own gradient; it is zero on pruned entries and pushes kept entries whose weights still have large
gradients to stay kept. It reaches the score through the same straight-through map as the mask's gradient,
``∂|s|/∂s = sign(s)``. Note that the product is ``g ⊙ ∇_θ ℓ``, not ``∇_m ℓ ⊙ ∇_θ ℓ`` (the straight-through
mask gradient ``θ ⊙ g`` times ``∇_θ ℓ`` would carry a spurious factor ``θ``). The released code
(``trainer/bilevel.py``) instead multiplies the score gradient by itself, ``-lr2 · (∂ℓ/∂s)²`` with
``∂ℓ/∂s = θ ⊙ g ⊙ sign(s)``, on every entry including pruned ones; that is not the formula above and is not
reproduced here.

**Same batch.** Both factors of the correction and the score gradient come from the one backward pass of the
upper-level step, on that step's batch, at the current ``(m, θ)``: the formula evaluates every term at the same
point, and the released code also takes them on one batch. The lower level's step uses the previous batch.

**The channel variant** (``bip_granularity="channel"``; the paper's structured BiP, which prunes filters or
channels). The mask selects whole output channels: a convolution's filters and a linear layer's neurons
(each a row of its weight). Every prunable tensor but the output layer (whose neurons are the classes) gets one
score per output channel, a tensor of shape ``(C_out, 1, ...)`` that broadcasts over the channel's weights, so
:class:`~strongticket.train.masking.MaskedModel` and its score rules serve it unchanged: ``global-topk`` keeps
exactly ``round(density · C)`` of the ``C`` channels of all those tensors together (``density`` is then a
*channel* density; the weight density it implies is in the summary) and passes the gradient straight through,
summed over each channel's weights by broadcasting. The implicit term of a channel is the sum of the
unstructured one over its weights (the channel's mask multiplies each of them, so ``∂/∂m_c = Σ_{i∈c} ∂/∂m_i``):
``-bip_implicit · Σ_{i∈c} (∂ℓ/∂θ_i)²``. Each score starts at the mean ``|θ|`` of its channel's trained weights.
The released code ranks L1 norms of per-weight score slices instead; a norm grows with the fan-in, which under
one global ranking would favour wide layers, so the mean is used here. The output layer is trained unmasked; a
pruned channel keeps its bias (a constant output, as unstructured pruning of its weights leaves it), and
``prune_bias`` is refused with this variant.

Choices made here where the paper leaves a step open: the phase length is ``optim.epochs`` like every other
phase; the channel variant's choices are listed above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from strongticket.errors import InputError
from strongticket.train.loop import Callback
from strongticket.train.masking import MaskedModel, Masks, mask_from_scores, prunable_names
from strongticket.train.methods.base import Method


def implicit_score_gradient(weight_grad: torch.Tensor, scores: torch.Tensor, coeff: float) -> torch.Tensor:
    """Return the implicit-gradient correction to add to the scores' gradient.

    ``-coeff · (∂ℓ/∂θ)² ⊙ sign(s)``: the correction ``-(1/γ) ∇_z ℓ ⊙ ∇_θ ℓ = -(1/γ) (∇_θ ℓ)²`` on the
    0/1 mask (derivation in the module docstring), passed to the score through the straight-through map of
    ``|s|``. A score that masks several weights (a channel's, shape ``(C_out, 1, ...)``) gets the sum of the
    term over them.

    Parameters
    ----------
    weight_grad : tensor
        ``∂ℓ/∂θ`` of one prunable tensor through the masked forward (zero where the mask prunes), any shape.
    scores : tensor
        The tensor's scores ``s`` (the mask keeps the largest ``|s|``): the weight's shape, or that shape with
        some dimensions 1 (one score per slice along them).
    coeff : float
        ``bip_implicit``, the ``1/γ`` of the lower level's L2 term (>= 0).

    Returns
    -------
    tensor
        Same shape as ``scores``.
    """
    w_shape, s_shape = tuple(weight_grad.shape), tuple(scores.shape)
    if len(w_shape) != len(s_shape) or any(s not in (1, w) for s, w in zip(s_shape, w_shape)):
        raise InputError(f"weight gradient of shape {w_shape} does not match scores of shape {s_shape}")
    sq = weight_grad.detach().square()
    summed = [i for i, (s, w) in enumerate(zip(s_shape, w_shape)) if s == 1 and w != 1]
    if summed:
        sq = sq.sum(dim=summed, keepdim=True)
    return -coeff * sq * torch.sign(scores.detach())


def channel_scores(weight: torch.Tensor) -> torch.Tensor:
    """One score per output channel of ``weight`` ``(C_out, ...)``: the mean ``|w|`` of the channel, shape
    ``(C_out, 1, ..., 1)`` (broadcasts over the channel's weights)."""
    if weight.dim() < 2:
        raise InputError(f"channel scores need a weight with output channels (2 or more dimensions), got shape "
                         f"{tuple(weight.shape)}")
    return weight.detach().abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True).clone()


def expand_masks(masks: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor],
                 names: Sequence[str]) -> Masks:
    """Masks of the full shapes of ``params[name]`` for every name in ``names``: a channel mask broadcast over
    its channel's weights, and all-True for a name ``masks`` does not hold (the output layer)."""
    return {n: (masks[n].to(torch.bool).expand(params[n].shape).clone() if n in masks
                else torch.ones_like(params[n], dtype=torch.bool)) for n in names}


def channel_count(masks: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """``(kept, total)`` channels of channel masks ``(C_out, 1, ...)``."""
    return sum(int(m.sum()) for m in masks.values()), sum(m.numel() for m in masks.values())


class Bilevel(Callback):
    """Alternate the two levels on consecutive batches by editing the gradients before each optimiser step.

    Even steps (0, 2, ...): lower level, the scores' gradients are dropped (``None``). Odd steps: upper level,
    the implicit correction is added to the scores' gradients, then the network's gradients are dropped.

    Parameters
    ----------
    network : sequence of tensors
        Every trainable parameter of the network (the lower level's variables).
    scores : mapping of name -> tensor
        The scores, keyed by the state_dict name of the weight each one masks.
    weights : mapping of name -> tensor
        The masked weights, same keys as ``scores``.
    coeff : float
        ``bip_implicit``.
    """

    def __init__(self, network: Sequence[torch.Tensor], scores: Mapping[str, torch.Tensor],
                 weights: Mapping[str, torch.Tensor], coeff: float) -> None:
        if set(scores) != set(weights):
            raise InputError(f"scores and weights name different tensors: {sorted(set(scores) ^ set(weights))}")
        self.network, self.scores, self.weights, self.coeff = list(network), dict(scores), dict(weights), coeff

    @staticmethod
    def is_upper(step: int) -> bool:
        """Whether optimiser step ``step`` (0-based) is an upper-level (score) step."""
        return step % 2 == 1

    def on_backward(self, trainer: Any) -> None:  # noqa: D102
        if not self.is_upper(trainer.step):
            for s in self.scores.values():
                s.grad = None  # None, not zero: the optimiser then skips the scores (no momentum, no decay)
            return
        if self.coeff > 0:
            with torch.no_grad():
                for name, s in self.scores.items():
                    w = self.weights[name]
                    if s.grad is not None and w.grad is not None:
                        s.grad.add_(implicit_score_gradient(w.grad, s, self.coeff))
        for p in self.network:
            p.grad = None


def channel_names(net: torch.nn.Module, prune: Any) -> list[str]:
    """The prunable weights whose output channels the channel variant selects: every prunable weight of ``net``
    under ``prune`` (a :class:`PruneConfig`) but the output layer's, whose outputs are the classes."""
    out_layer = prunable_names(net, prune_bias=False, prune_output=True)[-1]
    return [n for n in prunable_names(net, prune_bias=False, prune_output=prune.prune_output) if n != out_layer]


def mask_overlap(a: Masks, b: Masks) -> float:
    """Fraction of the entries kept by ``a`` that ``b`` also keeps (1 when ``a`` keeps nothing)."""
    kept = sum(int(m.sum()) for m in a.values())
    both = sum(int((a[n].bool() & b[n].bool().to(a[n].device)).sum()) for n in a)
    return both / kept if kept else 1.0


class BiP(Method):
    """Dense training, then alternating weight and score steps with the implicit-gradient correction."""

    name = "bip"
    paper = "Zhang et al. 2022, Advancing Model Pruning via Bi-level Optimization, §3-4"

    @property
    def channels(self) -> bool:
        """Whether the mask selects whole output channels (``bip_granularity="channel"``)."""
        return self.cfg.bip_granularity == "channel"

    def check(self) -> None:  # noqa: D102
        if self.channels and self.cfg.prune_bias:
            raise InputError("bip with --bip-granularity channel prunes whole output channels of the weights: "
                             "prune.prune_bias (--prune-bias) is not supported with it, got true")

    def check_run(self, config, net) -> None:  # noqa: D102
        if self.channels and not channel_names(net, config.prune):
            raise InputError(f"bip with --bip-granularity channel needs a prunable layer besides the output layer; "
                             f"{config.model.model} has none")

    def run(self, ctx):  # noqa: D102
        c = ctx.config
        net = ctx.new_net()
        pretrained = c.model.init_from is not None
        if not pretrained:
            ctx.train("dense", MaskedModel(net))
        names = ctx.prunable(net)
        params = dict(net.named_parameters())
        if self.channels:
            scored = channel_names(net, self.cfg)
            scores = {n: channel_scores(params[n]) for n in scored}  # the first mask: channels by mean |θ|
        else:
            scored = names
            scores = {n: params[n].detach().clone() for n in names}  # s = θ: the first mask is the magnitude mask
        initial = mask_from_scores({n: s.abs() for n, s in scores.items()}, self.cfg.density, self.cfg.scope)
        ctx.log_masks("init", expand_masks(initial, params, names))
        rule = "global-topk" if self.cfg.scope == "global" else "topk"
        model = MaskedModel(net, scores=scores, score_density=self.cfg.density, score_rule=rule)
        score_params = {n: model.scores[model._score_keys[n]] for n in scored}
        network = [p for p in net.parameters() if p.requires_grad]
        trainable = [{"params": network},
                     {"params": list(score_params.values()), "lr_scale": self.cfg.bip_score_lr / c.optim.lr}]
        bilevel = Bilevel(network, score_params, {n: params[n] for n in scored}, self.cfg.bip_implicit)
        res = ctx.train("bip", model, trainable=trainable, callbacks=[bilevel])
        steps = int(res.get("step", 0))
        found = mask_from_scores({n: s.detach().abs() for n, s in score_params.items()}, self.cfg.density,
                                 self.cfg.scope)
        final = expand_masks(found, params, names)
        ctx.log_masks("final", final)
        info: dict[str, Any] = {"dense_phase": not pretrained, "lower_steps": (steps + 1) // 2,
                                "upper_steps": steps // 2, "kept_from_magnitude": mask_overlap(found, initial),
                                "score_lr": self.cfg.bip_score_lr, "implicit": self.cfg.bip_implicit,
                                "finetune": self.cfg.bip_finetune, "granularity": self.cfg.bip_granularity}
        if self.channels:
            kept, total = channel_count(found)
            info |= {"channels_kept": kept, "channels": total, "channel_density": kept / total,
                     "layer_channels_kept": [int(m.sum()) for m in found.values()]}
        ctx.extras["bip"] = info
        out = MaskedModel(net, final)
        if self.cfg.bip_finetune:
            ctx.train("finetune", out)
        return out
