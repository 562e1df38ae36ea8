"""Masks: which tensors are prunable, scores to masks at a density, and the one place a mask is enforced.

Enforcement follows open_lth's ``PrunedModel`` in spirit but not in mechanism: :class:`MaskedModel` keeps the
network's own parameters untouched and runs every forward with *effective* parameters ``w * m`` (through
``torch.func.functional_call``). So the gradient of a pruned entry is exactly zero, and since pruned entries
(and their optimiser state) are zeroed when a mask is set, neither momentum nor weight decay can move them:
pruned weights never come back. The same mechanism serves edge-popup, where ``m`` is the straight-through
top-k of trainable scores (Ramanujan et al. 2020) and the frozen weights must not be overwritten.

Masks are dicts ``{state_dict key: bool tensor of the parameter's shape}``, the format the constructions use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from strongticket.errors import InputError
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import NetSpec
from strongticket.nets.trace import trace_module
from strongticket.nets.zoo import default_init

Masks = dict[str, torch.Tensor]


# ---------------------------------------------------------------------------------------------- prunable


def prunable_names(model: nn.Module, *, prune_bias: bool = False, prune_output: bool = True) -> list[str]:
    """Return the state_dict keys of the prunable tensors of ``model``, in module order.

    Prunable: the weight of every ``Conv2d`` and ``Linear`` (and their biases if ``prune_bias``); the last
    such layer (the output layer) only if ``prune_output``. BatchNorm parameters are never prunable.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not prune_output:
        layers = layers[:-1]
    names: list[str] = []
    for n, m in layers:
        prefix = f"{n}." if n else ""
        names.append(prefix + "weight")
        if prune_bias and m.bias is not None:
            names.append(prefix + "bias")
    return names


# ---------------------------------------------------------------------------------------------- init


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str, generator: torch.Generator) -> None:
    """Re-initialise every ``Conv2d``/``Linear``/``BatchNorm`` of ``model`` in place from ``generator`` (CPU).

    ``default`` is PyTorch's own (Kaiming-uniform with a = sqrt(5), biases U(±1/sqrt(fan_in)));
    ``kaiming_normal`` is N(0, 2/fan_in); ``kaiming_uniform`` its uniform counterpart; ``signed_constant``
    is ±sqrt(2/fan_in), the "signed Kaiming constant" of Ramanujan et al. 2020 (§4.1). Biases follow the
    PyTorch default (zero for ``signed_constant``), BatchNorm weight 1 and bias 0.
    """
    if scheme == "default":
        default_init(model, generator)
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight
            fan_in = w[0].numel()
            if scheme == "kaiming_normal":
                nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
            elif scheme == "kaiming_uniform":
                nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=generator)
            elif scheme == "signed_constant":
                sign = torch.randint(0, 2, w.shape, generator=generator, dtype=w.dtype) * 2 - 1
                w.copy_(sign * math.sqrt(2.0 / fan_in))
            else:
                raise InputError(f"unknown init {scheme!r}; valid: default, kaiming_normal, kaiming_uniform, "
                                 "signed_constant")
            if m.bias is not None:
                if scheme == "signed_constant":
                    m.bias.zero_()
                else:
                    bound = 1 / math.sqrt(fan_in)
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            if m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


#: Each init scheme as a :class:`WeightDistribution` (one law for weights and biases alike); ``default`` is
#: PyTorch's U(+-1/sqrt(fan_in)), i.e. Kaiming-uniform with gain sqrt(1/3).
INIT_DISTRIBUTIONS: dict[str, WeightDistribution] = {
    "default": WeightDistribution.kaiming_uniform(gain=math.sqrt(1.0 / 3.0)),
    "kaiming_normal": WeightDistribution.kaiming_normal(),
    "kaiming_uniform": WeightDistribution.kaiming_uniform(),
    "signed_constant": WeightDistribution.signed_constant(),
}


@dataclass(frozen=True, eq=False)
class RandomNetwork:
    """A network's random weights as a ticket knows them: ``distribution.generate(spec, seed)``.

    ``names`` maps each spec parameter (``layers.3.weight``) to the network's state_dict key (``3.weight``).
    """

    spec: NetSpec
    distribution: WeightDistribution
    seed: int
    names: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"spec", "distribution", "seed", "names"}``."""
        return {"spec": self.spec.to_dict(), "distribution": self.distribution.to_dict(), "seed": self.seed,
                "names": dict(self.names)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RandomNetwork:
        """Inverse of :meth:`to_dict`; an :class:`InputError` names a missing or malformed field."""
        if not isinstance(d, Mapping) or not {"spec", "distribution", "seed", "names"} <= set(d):
            raise InputError(f"a random network record needs spec, distribution, seed and names, got {d!r:.80}")
        if not isinstance(d["names"], Mapping):
            raise InputError(f"random network names must be a mapping, got {d['names']!r:.80}")
        return cls(NetSpec.from_dict(d["spec"]), WeightDistribution.from_dict(d["distribution"]), int(d["seed"]),
                   {str(k): str(v) for k, v in d["names"].items()})


def spec_names(net: nn.Module, input_shape: tuple[int, ...]) -> tuple[NetSpec, dict[str, str]]:
    """Return ``net``'s :class:`NetSpec` and ``{spec parameter name: net state_dict key}``.

    The mapping pairs parameters by order and shape and is checked against the one ``torch.fx`` tracing
    reports; a network the spec cannot describe (BatchNorm, residual additions) raises an
    :class:`InputError` naming the unsupported layer.
    """
    traced = trace_module(net, tuple(input_shape))
    spec_shapes = traced.spec.parameter_shapes()
    net_shapes = {k: tuple(p.shape) for k, p in net.named_parameters()}
    if len(spec_shapes) != len(net_shapes):
        raise InputError(f"the network has {len(net_shapes)} parameters, its spec {len(spec_shapes)}")
    names = {}
    for (s, s_shape), (k, k_shape) in zip(spec_shapes.items(), net_shapes.items()):
        if s_shape != k_shape:
            raise InputError(f"parameter {k!r} of shape {k_shape} does not match spec parameter {s!r} of "
                             f"shape {s_shape}")
        names[s] = k
    if names != traced.source_names:
        raise InputError(f"parameter order {names} disagrees with the traced names {traced.source_names}")
    return traced.spec, names


@torch.no_grad()
def init_regenerable(net: nn.Module, scheme: str, seed: int, input_shape: tuple[int, ...]) -> RandomNetwork:
    """Overwrite every parameter of ``net`` with ``INIT_DISTRIBUTIONS[scheme].generate(spec, seed)``.

    Unlike :func:`init_weights` the weights are drawn per parameter from ``(seed, spec name)``
    (:mod:`strongticket.nets.distributions`), biases from the same law, so a ticket regenerates them bit for
    bit. Returns the record that does so.
    """
    if scheme not in INIT_DISTRIBUTIONS:
        raise InputError(f"unknown init {scheme!r}; valid: {', '.join(INIT_DISTRIBUTIONS)}")
    spec, names = spec_names(net, input_shape)
    dist = INIT_DISTRIBUTIONS[scheme]
    weights = dist.generate(spec, seed)
    params = dict(net.named_parameters())
    for s, k in names.items():
        params[k].copy_(weights[s].to(device=params[k].device, dtype=params[k].dtype))
    return RandomNetwork(spec, dist, seed, names)


# ---------------------------------------------------------------------------------------------- scores → masks


def mask_from_scores(scores: Mapping[str, torch.Tensor], density: float, scope: str = "global") -> Masks:
    """Return masks keeping the highest-scoring fraction ``density`` of the entries.

    Parameters
    ----------
    scores : mapping of name -> tensor
        One score tensor per prunable tensor (higher = keep); ``-inf`` marks entries that must stay pruned.
    density : float
        Fraction kept, in (0, 1]; ``round(density * total)`` entries are kept (at least one).
    scope : str
        ``global``: one ranking over all tensors; ``layerwise``: the same density in each tensor.

    Returns
    -------
    dict of name -> bool tensor
        Exactly the requested number of ``True`` entries (ties broken by position, through ``topk``).
    """
    if not 0 < density <= 1:
        raise InputError(f"density must be in (0, 1], got {density}")
    if scope == "layerwise":
        return {n: _topk_mask(s, density) for n, s in scores.items()}
    if scope != "global":
        raise InputError(f"scope must be global or layerwise, got {scope!r}")
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    keep = _topk_mask(flat, density)
    out: Masks = {}
    start = 0
    for n in names:
        k = scores[n].numel()
        out[n] = keep[start:start + k].reshape(scores[n].shape)
        start += k
    return out


def _topk_mask(s: torch.Tensor, density: float) -> torch.Tensor:
    flat = s.detach().reshape(-1).float()
    k = max(1, int(round(density * flat.numel())))
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.reshape(s.shape)


def erk_densities(shapes: Mapping[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Return per-tensor densities of the Erdős–Rényi-Kernel distribution with overall ``density``.

    Density of a tensor is proportional to ``sum(shape) / prod(shape)`` (Evci et al. 2020, §3), scaled so
    that the kept count matches; tensors whose density would exceed 1 are kept dense and the rest rescaled.
    """
    total = sum(math.prod(s) for s in shapes.values())
    dense: set[str] = set()
    while True:
        budget = density * total - sum(math.prod(shapes[n]) for n in dense)
        raw = {n: sum(s) / math.prod(s) for n, s in shapes.items() if n not in dense}
        denom = sum(raw[n] * math.prod(shapes[n]) for n in raw)
        eps = budget / denom if denom > 0 else 0.0
        over = {n for n in raw if eps * raw[n] > 1}
        if not over:
            return {n: (1.0 if n in dense else max(eps * raw[n], 0.0)) for n in shapes}
        dense |= over


class TopKStraightThrough(torch.autograd.Function):
    """Edge-popup's ``GetSubnet`` (Ramanujan et al. 2020, §3): forward a 0/1 mask of the top-``density``
    fraction of ``scores`` (callers pass ``|s|``); backward passes the gradient straight through to every score."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, density: float) -> torch.Tensor:  # noqa: D102
        flat = scores.reshape(-1)
        j = flat.numel() - max(1, int(round(density * flat.numel())))  # number of entries dropped
        if j == 0:
            return torch.ones_like(scores)
        threshold = flat.kthvalue(j).values
        return (scores > threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad, None


class ThresholdStraightThrough(torch.autograd.Function):
    """Forward ``1[x > threshold]``; backward passes the gradient straight through to ``x``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:  # noqa: D102
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad, None


def _rule_topk(scores: Mapping[str, torch.Tensor], density: float) -> dict[str, torch.Tensor]:
    return {n: TopKStraightThrough.apply(s.abs(), density) for n, s in scores.items()}


def _rule_global_topk(scores: Mapping[str, torch.Tensor], density: float) -> dict[str, torch.Tensor]:
    if not scores:
        return {}
    flat = torch.cat([s.detach().abs().reshape(-1) for s in scores.values()])
    j = flat.numel() - max(1, int(round(density * flat.numel())))  # entries dropped
    if j == 0:
        return {n: torch.ones_like(s) for n, s in scores.items()}
    threshold = flat.kthvalue(j).values
    return {n: ThresholdStraightThrough.apply(s.abs(), threshold) for n, s in scores.items()}


def _rule_round(scores: Mapping[str, torch.Tensor], density: float) -> dict[str, torch.Tensor]:
    return {n: ThresholdStraightThrough.apply(s, 0.5) for n, s in scores.items()}


# how trainable scores become masks (every rule passes the gradient straight through to the scores):
#   topk         the top-``density`` fraction of |s| in each tensor (edge-popup, Ramanujan et al. 2020)
#   global-topk  the top-``density`` fraction of |s| over all scored tensors together (BiP, Zhang et al. 2022)
#   round        1[s > 0.5] for scores kept in [0, 1] (GEM-MINER, Sreenivasan et al. 2022); density unused
SCORE_RULES = {"topk": _rule_topk, "global-topk": _rule_global_topk, "round": _rule_round}


# ---------------------------------------------------------------------------------------------- the model


class MaskedModel(nn.Module):
    """A network run with masked parameters: the single place masks are enforced.

    Parameters
    ----------
    net : nn.Module
        The network; its parameters are never overwritten by masking.
    masks : dict of name -> bool tensor, optional
        Fixed masks keyed by ``net``'s state_dict names (registered as buffers).
    scores : dict of name -> float tensor, optional
        Trainable scores (edge-popup, BiP, GEM-MINER): the mask of each named tensor is computed from the
        scores by ``score_rule`` at every forward, with a straight-through backward. A fixed mask of the same
        name multiplies it (GEM-MINER's frozen weights).
    score_density : float
        Density of the score masks (per tensor for ``topk``, over all scored tensors for ``global-topk``).
    score_rule : str
        A key of :data:`SCORE_RULES`: ``topk`` (default, edge-popup's layer-wise rule), ``global-topk`` or
        ``round``.
    """

    def __init__(self, net: nn.Module, masks: Mapping[str, torch.Tensor] | None = None,
                 scores: Mapping[str, torch.Tensor] | None = None, score_density: float = 1.0,
                 score_rule: str = "topk") -> None:
        super().__init__()
        if score_rule not in SCORE_RULES:
            raise InputError(f"score_rule must be one of {', '.join(SCORE_RULES)}, got {score_rule!r}")
        self.net = net
        self._mask_names: list[str] = []
        self.scores = nn.ParameterDict()
        self._score_keys: dict[str, str] = {}
        self.score_density = float(score_density)
        self.score_rule = score_rule
        for name, s in (scores or {}).items():
            key = name.replace(".", "__")
            self.scores[key] = nn.Parameter(s.detach().clone())
            self._score_keys[name] = key
        self.set_masks(masks or {})

    # masks ---------------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The network's own named tensors (parameters and buffers), keyed like its state_dict."""
        return dict(self.net.named_parameters()) | dict(self.net.named_buffers())

    def set_masks(self, masks: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer | None = None) -> None:
        """Install fixed ``masks``; zero the pruned entries of the weights and of ``optimizer``'s state."""
        params = self.params
        if self._mask_names and set(masks) == set(self._mask_names):
            # same tensors: update in place, so that DDP and optimisers keep seeing the same buffers
            with torch.no_grad():
                for name, m in masks.items():
                    getattr(self, _buf(name)).copy_(m.to(torch.bool))
            self.apply_masks_to_weights(optimizer)
            return
        for name in self._mask_names:
            delattr(self, _buf(name))
        self._mask_names = []
        for name, m in masks.items():
            if name not in params:
                raise InputError(f"mask names {name!r}, which is not a tensor of the network; "
                                 f"valid: {', '.join(params)}")
            if tuple(m.shape) != tuple(params[name].shape):
                raise InputError(f"mask {name!r} has shape {tuple(m.shape)}, parameter has {tuple(params[name].shape)}")
            self.register_buffer(_buf(name), m.to(device=params[name].device, dtype=torch.bool).clone())
            self._mask_names.append(name)
        self.apply_masks_to_weights(optimizer)

    @torch.no_grad()
    def apply_masks_to_weights(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero pruned weights and, if given, their optimiser state (momentum, Adam moments)."""
        params = self.params
        for name in self._mask_names:
            p, m = params[name], getattr(self, _buf(name))
            p.mul_(m)
            if optimizer is not None and p in optimizer.state:
                for v in optimizer.state[p].values():
                    if torch.is_tensor(v) and v.shape == p.shape:
                        v.mul_(m)

    @property
    def fixed_masks(self) -> Masks:
        """The fixed masks only (without the score masks): what a checkpoint must restore."""
        return {n: getattr(self, _buf(n)).clone() for n in self._mask_names}

    @property
    def masks(self) -> Masks:
        """The current masks as bool tensors (fixed masks and, for edge-popup, the top-k of the scores)."""
        out = {n: getattr(self, _buf(n)).clone() for n in self._mask_names}
        with torch.no_grad():
            for name, m in self._score_masks().items():
                m = m.bool()
                out[name] = out[name] & m if name in out else m
        return out

    def _score_masks(self) -> dict[str, torch.Tensor]:
        """The 0/1 float masks of the scored tensors under ``score_rule`` (straight-through differentiable)."""
        if not self._score_keys:
            return {}
        scores = {name: self.scores[key] for name, key in self._score_keys.items()}
        return SCORE_RULES[self.score_rule](scores, self.score_density)

    def effective_params(self) -> dict[str, torch.Tensor]:
        """The tensors the forward uses: ``w * mask`` for masked names (differentiable)."""
        params = self.params
        out: dict[str, torch.Tensor] = {}
        for name in self._mask_names:
            out[name] = params[name] * getattr(self, _buf(name))
        # the rules take |s| outside the Function, so the straight-through gradient picks up sign(s) as in
        # the reference code of edge-popup
        for name, m in self._score_masks().items():
            out[name] = out.get(name, params[name]) * m
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the network with masked parameters. Input ``(B, C, H, W)``, output ``(B, num_classes)``."""
        eff = self.effective_params()
        if not eff:
            return self.net(x)
        return functional_call(self.net, eff, (x,), strict=False)

    @torch.no_grad()
    def effective_state_dict(self) -> dict[str, torch.Tensor]:
        """The network's state_dict with every masked tensor multiplied by its mask (a plain dense model)."""
        sd = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        for name, m in self.masks.items():
            sd[name] = sd[name] * m.to(sd[name].dtype)
        return sd


def _buf(name: str) -> str:
    return "mask__" + name.replace(".", "__")


# ---------------------------------------------------------------------------------------------- reports


def density_report(masks: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor] | None = None
                   ) -> dict[str, object]:
    """Return per-tensor ``{name, shape, numel, kept, density}`` rows, totals and the collapsed tensors.

    A tensor is *collapsed* when its mask keeps nothing: the layer then passes no signal (layer collapse,
    Tanaka et al. 2020) and the network's output cannot depend on its input.
    """
    rows = []
    for name, m in masks.items():
        kept = int(m.sum())
        rows.append({"name": name, "shape": list(m.shape), "numel": m.numel(), "kept": kept,
                     "density": kept / max(1, m.numel())})
    total = sum(r["numel"] for r in rows)
    kept = sum(r["kept"] for r in rows)
    return {"layers": rows, "prunable": total, "kept": kept, "density": kept / total if total else 1.0,
            "collapsed": [r["name"] for r in rows if r["kept"] == 0 and r["numel"] > 0]}
