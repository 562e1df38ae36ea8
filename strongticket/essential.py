"""Essential sparsity: how much of a trained dense network one-shot magnitude pruning removes for free.

Jaiswal, Liu, Chen and Wang (NeurIPS 2023, "The Emergence of Essential Sparsity in Large Pre-trained Models:
The Weights that Matter") prune a pre-trained model once, by global weight magnitude, over a sweep of
sparsities and *without retraining*, and call the sharp dropping point of the accuracy-vs-sparsity curve its
*essential sparsity*; they also report it for N:M patterns and watch it emerge during pre-training. Here the
same protocol runs on a model of the zoo trained by ``strongticket train`` (or by the one training loop, with a
callback that keeps the weights of every epoch in memory), in seconds on a CPU.

Conventions (every choice the paper leaves open)
-------------------------------------------------
* **Prunable weights.** Every ``Linear``/``Conv2d`` weight, the output layer included unless
  ``prune_output=False``; biases and BatchNorm parameters are kept (and BatchNorm statistics are not
  recalibrated: the protocol has no retraining of any kind).
* **Unstructured.** One global ranking of ``|w|`` over all prunable weights (one stable sort: ties go to the
  lower flat index); sparsity ``s`` removes exactly ``round(s * P)`` of the ``P`` prunable weights.
* **N:M.** ``"2:4"`` keeps **2 of every 4** consecutive weights (the NVIDIA convention; the reference code's
  ``prune_n`` counts the *removed* ones). Groups run along each output row's fan-in, flattened in PyTorch's
  ``(in, kh, kw)`` order for a convolution (NVIDIA's ASP groups along input channels of an NHWC layout
  instead). When the fan-in is not a multiple of ``M`` the last, short group of ``r < M`` weights is padded
  with entries that are always pruned first, so it keeps ``min(N, r)``: the density is then slightly above
  ``N / M`` and the sparsity recorded is the one measured, not the nominal one.
* **N:M curves.** A pattern has one sparsity, ``1 - N/M``. To give it a curve the whole family with the same
  ``M`` is swept, ``N = M, M-1, ..., 1`` (sparsities 0, 1/M, ..., 1 - 1/M); the named pattern is a point of it.
* **The essential sparsity** has two operational definitions, both computed:
  (a) :func:`essential_by_drop`: the largest swept sparsity up to which *every* swept point stays within
  ``max_drop`` (1 point of accuracy by default) of the dense accuracy; (b) :func:`knee_by_chord`: the knee of
  the curve, the swept point farthest above the chord from the first to the last point once both axes are
  scaled to [0, 1] (the Kneedle difference curve of Satopää et al. 2011). Tables lead with (a), whose unit
  (accuracy points) is the one the paper's "at most 1 % drop" statements use; (b) depends on the swept range
  and is reported beside it.
* Accuracies are on the test set, as in the paper (there is no separate validation split to pick a knee on).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.train.config import RunConfig, derive_seed
from strongticket.train.data import Dataset, load_dataset
from strongticket.train.loop import Callback, Trainer
from strongticket.train.masking import MaskedModel, init_weights, prunable_names

#: Default sparsity grid: 0 to 0.98 by 0.02, then 0.99 (51 points).
DEFAULT_SPARSITIES = "0:0.98:0.02,0.99"
#: Default N:M patterns beside unstructured pruning.
DEFAULT_PATTERNS = ("2:4", "4:8")
#: Default tolerance of definition (a): 1 point of accuracy.
DEFAULT_MAX_DROP = 0.01
#: Default threshold of definition (b): the knee must lie this far above the chord on the [0, 1]-scaled curve.
DEFAULT_MIN_KNEE_DISTANCE = 0.05
#: Test examples per forward pass of a sweep (the whole MNIST test set in one pass).
EVAL_BATCH = 10000

Masks = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------------------- N:M patterns


@dataclass(frozen=True)
class NMPattern:
    """Keep ``n`` of every ``m`` consecutive weights of a row's fan-in (``1 <= n <= m``)."""

    n: int
    m: int

    @property
    def name(self) -> str:
        """``"2:4"``."""
        return f"{self.n}:{self.m}"

    @property
    def family(self) -> str:
        """``"N:4"``: the curve this pattern is a point of."""
        return f"N:{self.m}"

    @property
    def nominal_sparsity(self) -> float:
        """``1 - n / m`` (the measured sparsity is higher only by short groups, see :func:`nm_mask`)."""
        return 1.0 - self.n / self.m


_PATTERN = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_pattern(text: str, what: str = "--pattern") -> NMPattern:
    """Parse ``"N:M"`` (N kept of every M).

    Raises
    ------
    InputError
        Not two integers ``1 <= N <= M`` separated by a colon, e.g. ``"5:4"``.
    """
    match = _PATTERN.match(str(text))
    n, m = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not match or not 1 <= n <= m:
        raise InputError(f"{what} must be N:M with integers 1 <= N <= M (2:4 keeps 2 of every 4 weights), "
                         f"got {text!r}")
    return NMPattern(n, m)


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The N:M mask of one weight tensor: in every group of ``m`` consecutive fan-in weights keep the ``n``
    largest ``|w|``.

    Parameters
    ----------
    weight : torch.Tensor, shape (out, fan_in) or (out, in, kh, kw)
        A layer's weight; a convolution's fan-in is flattened in ``(in, kh, kw)`` order.
    n, m : int
        Kept per group and group size, ``1 <= n <= m``.

    Returns
    -------
    torch.Tensor of bool, the shape of ``weight``
        True where kept. Every full group keeps exactly ``n``; a last, short group of ``r < m`` weights keeps
        ``min(n, r)``. Ties keep the lower index (a stable sort), so the mask is deterministic.
    """
    if not 1 <= n <= m:
        raise InputError(f"N:M needs integers 1 <= N <= M, got {n}:{m}")
    if weight.dim() < 2:
        raise InputError(f"N:M masks apply to weights with a fan-in (2 or more dimensions), got shape "
                         f"{tuple(weight.shape)}")
    rows = weight.shape[0]
    a = weight.detach().abs().reshape(rows, -1).float()
    fan_in = a.shape[1]
    groups = math.ceil(fan_in / m)
    # padding below any |w| is pruned first, so a short group keeps min(n, r) real weights
    padded = torch.full((rows, groups * m), -1.0, device=a.device)
    padded[:, :fan_in] = a
    order = torch.argsort(padded.view(rows, groups, m), dim=-1, descending=True, stable=True)
    keep = torch.zeros(rows, groups, m, dtype=torch.bool, device=a.device)
    keep.scatter_(-1, order[..., :n], True)
    return keep.view(rows, groups * m)[:, :fan_in].reshape(weight.shape)


def nm_masks(params: Mapping[str, torch.Tensor], pattern: NMPattern) -> Masks:
    """:func:`nm_mask` of every tensor in ``params`` (name -> weight)."""
    return {k: nm_mask(w, pattern.n, pattern.m) for k, w in params.items()}


# ----------------------------------------------------------------------------------------- unstructured


def parse_sparsities(text: str, what: str = "--sparsities") -> tuple[float, ...]:
    """Parse a comma-separated list of sparsities and ``START:STOP:STEP`` ranges (STOP included).

    Returns the sorted distinct values, 0 always among them (the dense reference).

    Raises
    ------
    InputError
        A value that is not a number in [0, 1), or a range with a non-positive step or START > STOP (empty).
    """
    values: set[float] = {0.0}
    empty: list[str] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if part.count(":") == 2:
                a, b, step = (float(x) for x in part.split(":"))
                if not step > 0 or not math.isfinite(a) or not math.isfinite(b):
                    raise ValueError
                count = int(math.floor((b - a) / step + 1e-9)) + 1
                if count < 1:
                    empty.append(part)
                values.update(round(a + i * step, 10) for i in range(max(0, count)))
            else:
                values.add(float(part))
        except ValueError:
            raise InputError(f"{what} must be comma-separated numbers in [0, 1) or START:STOP:STEP ranges with a "
                             f"positive STEP, got {text!r}") from None
    if empty:
        raise InputError(f"{what} range {empty[0]!r} is empty: START:STOP:STEP needs START <= STOP, got {text!r}")
    bad = [v for v in values if not 0 <= v < 1]
    if bad:
        raise InputError(f"{what} must lie in [0, 1) (1 would remove every weight), got {min(bad, key=abs):g} "
                         f"in {text!r}")
    return tuple(sorted(values))


def magnitude_ranks(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Global rank of every prunable weight by ``|w|`` (0 = smallest), shape ``(P,)`` in ``params`` order.

    One stable sort serves the whole sweep: sparsity ``s`` keeps the weights of rank ``>= round(s * P)``.
    """
    flat = torch.cat([w.detach().abs().reshape(-1).float() for w in params.values()])
    order = torch.argsort(flat, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(flat), device=flat.device)
    return ranks


def global_magnitude_masks(params: Mapping[str, torch.Tensor], ranks: torch.Tensor, sparsity: float) -> Masks:
    """The one-shot global magnitude mask at ``sparsity`` from :func:`magnitude_ranks` (exactly
    ``round(sparsity * P)`` weights removed)."""
    keep = ranks >= int(round(sparsity * len(ranks)))
    out: Masks = {}
    start = 0
    for k, w in params.items():
        out[k] = keep[start:start + w.numel()].view(w.shape)
        start += w.numel()
    return out


# ----------------------------------------------------------------------------------------- the knee


def _curve(sparsity: Sequence[float], accuracy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(sparsity, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    if s.ndim != 1 or s.shape != a.shape or len(s) < 2:
        raise InputError(f"a curve needs two 1-D sequences of the same length >= 2, got {s.shape} and {a.shape}")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(a))):
        raise InputError("a curve's sparsities and accuracies must be finite")
    if np.any(np.diff(s) <= 0):
        raise InputError("a curve's sparsities must be strictly increasing")
    return s, a


def essential_by_drop(sparsity: Sequence[float], accuracy: Sequence[float], *,
                      max_drop: float = DEFAULT_MAX_DROP, reference: float | None = None) -> tuple[float, bool]:
    """Definition (a): the largest swept sparsity up to which every swept point is within ``max_drop`` of dense.

    Parameters
    ----------
    sparsity, accuracy : sequences of float, shape (K,)
        The curve, sparsities strictly increasing; accuracies as fractions in [0, 1].
    max_drop : float
        Allowed drop below ``reference`` (0.01 = 1 point of accuracy).
    reference : float or None
        The dense accuracy; None takes the first point's (sparsity 0 in a sweep).

    Returns
    -------
    (float, bool)
        The sparsity, and whether it is censored: the last swept point is still within ``max_drop``, so the
        true value is at least this (extend the sweep). A curve whose first point already drops more than
        ``max_drop`` below ``reference`` returns its first sparsity, uncensored.

    Notes
    -----
    The prefix rule ("every point up to it") rather than "the largest point within the tolerance" keeps a
    chance recovery far in the tail (a noisy point at high sparsity) from being read as the dropping point.
    """
    s, a = _curve(sparsity, accuracy)
    if not max_drop >= 0:
        raise InputError(f"max_drop must be >= 0, got {max_drop}")
    ref = float(a[0]) if reference is None else float(reference)
    ok = a >= ref - max_drop - 1e-12
    if ok.all():
        return float(s[-1]), True
    first_bad = int(np.argmin(ok))
    return float(s[max(0, first_bad - 1)]), False


def knee_by_chord(sparsity: Sequence[float], accuracy: Sequence[float], *,
                  min_distance: float = DEFAULT_MIN_KNEE_DISTANCE) -> float | None:
    """Definition (b): the knee, the swept point farthest above the chord of the [0, 1]-scaled curve.

    Sparsity is scaled to [0, 1] over the swept range and accuracy over its range (min to max); the chord joins
    the first and the last point; the knee is the point of largest vertical distance *above* the chord (for
    a fixed chord the perpendicular distance is proportional, so the point is the same). This is the
    difference curve of Kneedle (Satopää, Albrecht, Irwin and Raghavan 2011) for a decreasing concave curve,
    without its smoothing.

    Parameters
    ----------
    sparsity, accuracy : sequences of float, shape (K,)
        The curve, sparsities strictly increasing.
    min_distance : float
        The knee must lie at least this far above the chord (in scaled units); below it the curve has no knee.

    Returns
    -------
    float or None
        The knee's sparsity; None for a flat curve, a curve with fewer than 3 points, or one that never rises
        ``min_distance`` above its chord (a straight or convex decline has no sharp dropping point).
    """
    s, a = _curve(sparsity, accuracy)
    if not min_distance >= 0:
        raise InputError(f"min_distance must be >= 0, got {min_distance}")
    span = a.max() - a.min()
    if len(s) < 3 or span <= 0:
        return None
    x = (s - s[0]) / (s[-1] - s[0])
    y = (a - a.min()) / span
    d = y - (y[0] + (y[-1] - y[0]) * x)
    i = int(np.argmax(d))
    return float(s[i]) if d[i] >= min_distance and d[i] > 0 else None


# ----------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Curve:
    """Accuracy of one snapshot under one pruning pattern over its sweep.

    Attributes
    ----------
    pattern : str
        ``"unstructured"`` or an N:M family ``"N:4"``.
    sparsity, accuracy : tuple of float
        Measured sparsity over the prunable weights and test accuracy (fraction), sparsity increasing.
    labels : tuple of str
        The N:M pattern of each point (``"3:4"``, ...), empty strings for unstructured.
    essential : float
        Definition (a) at the result's ``max_drop``.
    censored : bool
        True when every swept point is within ``max_drop``: the essential sparsity is at least ``essential``.
    knee : float or None
        Definition (b).
    """

    pattern: str
    sparsity: tuple[float, ...]
    accuracy: tuple[float, ...]
    labels: tuple[str, ...]
    essential: float
    censored: bool
    knee: float | None

    def at(self, sparsity: float | None) -> float | None:
        """The accuracy at a swept ``sparsity`` (None if ``sparsity`` is None)."""
        if sparsity is None:
            return None
        return self.accuracy[self.sparsity.index(sparsity)]


@dataclass(frozen=True)
class Snapshot:
    """The sweeps of the weights after ``step`` optimiser steps (``epoch`` = step / steps per epoch)."""

    epoch: float
    step: int
    dense_accuracy: float
    curves: tuple[Curve, ...]
    points: dict[str, dict[str, float]]  # named N:M pattern -> {"sparsity", "accuracy"}
    seconds: float

    def curve(self, pattern: str) -> Curve:
        """The curve of ``pattern`` (``"unstructured"`` or ``"N:M"`` family)."""
        return next(c for c in self.curves if c.pattern == pattern)


@dataclass(frozen=True)
class EssentialResult:
    """Everything ``strongticket essential`` reports; the last snapshot is the trained model.

    ``seconds`` holds wall-clock ``train`` (with ``config``) and ``sweep`` seconds, and ``sweep_cpu``, the
    processor seconds of the sweeps summed over threads.
    """

    source: dict[str, Any]
    model: str
    dataset: str
    prunable: int
    prunable_names: tuple[str, ...]
    patterns: tuple[str, ...]
    max_drop: float
    min_knee_distance: float
    snapshots: tuple[Snapshot, ...]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def final(self) -> Snapshot:
        """The trained model's sweep."""
        return self.snapshots[-1]

    def summary(self) -> dict[str, Any]:
        """Flat numbers for a comparison table: the trained model's detected points per pattern."""
        f = self.final
        out: dict[str, Any] = {"dense_accuracy": f.dense_accuracy, "max_drop": self.max_drop}
        for c in f.curves:
            key = c.pattern.replace(":", "_")  # "N_4"
            out[f"essential_{key}"] = c.essential
            out[f"essential_{key}_censored"] = c.censored
            out[f"knee_{key}"] = c.knee
        for name, p in f.points.items():
            out[f"accuracy_{name.replace(':', '_')}"] = p["accuracy"]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (``essential.json``)."""
        return {"format": "strongticket-essential", "source": self.source, "model": self.model,
                "dataset": self.dataset, "prunable": self.prunable, "prunable_names": list(self.prunable_names),
                "patterns": list(self.patterns), "max_drop": self.max_drop,
                "min_knee_distance": self.min_knee_distance, "seconds": self.seconds, "summary": self.summary(),
                "snapshots": [{"epoch": s.epoch, "step": s.step, "dense_accuracy": s.dense_accuracy,
                               "seconds": s.seconds, "points": s.points,
                               "curves": [{"pattern": c.pattern, "sparsity": list(c.sparsity),
                                           "accuracy": list(c.accuracy), "labels": list(c.labels),
                                           "essential": c.essential, "censored": c.censored, "knee": c.knee}
                                          for c in s.curves]} for s in self.snapshots]}

    def to_markdown(self) -> str:
        """Two tables: the trained model's detected points per pattern, and the unstructured points per snapshot."""
        pts = f"{100 * self.max_drop:g}"
        lines = [f"# Essential sparsity: {self.model} on {self.dataset}", "",
                 f"One-shot global magnitude pruning of the trained model, no retraining; {self.prunable} prunable "
                 f"weights. Essential sparsity = the largest swept sparsity up to which every point stays within "
                 f"{pts} point(s) of dense accuracy (>= when the sweep never left that band); knee = the point "
                 "farthest above the chord of the [0, 1]-scaled curve.", "",
                 "| pattern | dense acc | essential sparsity | acc there | knee | acc at knee | named points |",
                 "|---|---|---|---|---|---|---|"]
        f = self.final
        for c in f.curves:
            named = ", ".join(f"{n} {100 * p['accuracy']:.2f}% @ {p['sparsity']:.3f}" for n, p in f.points.items()
                              if _family(n) == c.pattern)
            lines.append(f"| {c.pattern} | {100 * f.dense_accuracy:.2f}% | {'>= ' if c.censored else ''}"
                         f"{c.essential:.3f} | {100 * c.at(c.essential):.2f}% | {_opt(c.knee, '.3f')} | "
                         f"{_opt(c.at(c.knee), '.2%')} | {named or '-'} |")
        if len(self.snapshots) > 1:
            names = list(f.points)
            lines += ["", "Per snapshot of the dense training run (unstructured; named N:M points' accuracy):", "",
                      "| epoch | step | dense acc | essential sparsity | knee | "
                      + " | ".join(names) + (" |" if names else "|"),
                      "|---|---|---|---|---|" + "---|" * len(names)]
            for s in self.snapshots:
                u = s.curve("unstructured")
                lines.append(f"| {s.epoch:.3g} | {s.step} | {100 * s.dense_accuracy:.2f}% | "
                             f"{'>= ' if u.censored else ''}{u.essential:.3f} | {_opt(u.knee, '.3f')} | "
                             + " | ".join(f"{100 * s.points[n]['accuracy']:.2f}%" for n in names)
                             + (" |" if names else "|"))
        secs = ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items())
        lines += ["", f"Time: {secs}.", ""]
        return "\n".join(lines)


def _family(name: str) -> str:
    """``"2:4"`` -> ``"N:4"``."""
    return f"N:{name.split(':')[1]}"


def _opt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


# ----------------------------------------------------------------------------------------- sweeping


@torch.inference_mode()
def sweep_accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> float:
    """Fraction of ``y (N,)`` that ``net`` (in eval mode) classifies right from ``x (N, C, H, W)``.

    The accuracy of :func:`strongticket.train.loop.evaluate` without its loss and its index gathers: batches
    are slices (views) of ``x``, which matters when one test set is evaluated some sixty times per snapshot.
    """
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((net(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(1, len(y))


@torch.no_grad()
def sweep_snapshot(net: nn.Module, state: Mapping[str, torch.Tensor], data: Dataset, names: Sequence[str], *,
                   sparsities: Sequence[float], patterns: Sequence[NMPattern], max_drop: float = DEFAULT_MAX_DROP,
                   min_knee_distance: float = DEFAULT_MIN_KNEE_DISTANCE, epoch: float = 0.0,
                   step: int = 0) -> Snapshot:
    """Sweep one set of weights: unstructured over ``sparsities`` and each N:M family, no retraining.

    Parameters
    ----------
    net : nn.Module
        A network of the right architecture; its state is overwritten with ``state`` (and pruned copies of it).
    state : mapping of str to tensor
        The snapshot (a ``state_dict``).
    data : Dataset
        Its test split is evaluated (on ``data.device``; ``net`` must already be there).
    names : sequence of str
        The prunable weights (state-dict keys).
    sparsities : sequence of float
        Unstructured grid, increasing, starting at 0.
    patterns : sequence of NMPattern
        Named N:M patterns; each one's ``M`` family is swept once.
    """
    started = time.perf_counter()
    net.load_state_dict(state)
    net.eval()
    params = dict(net.named_parameters())
    weights = {k: params[k].detach().clone() for k in names}

    def accuracy(masks: Masks) -> float:
        for k, m in masks.items():
            params[k].copy_(weights[k] * m)
        return sweep_accuracy(net, data.test_x, data.test_y)

    total = sum(w.numel() for w in weights.values())

    def measured(masks: Masks) -> float:
        return 1.0 - sum(int(m.sum()) for m in masks.values()) / total

    ranks = magnitude_ranks(weights)
    xs, ys = [], []
    for s in sparsities:
        masks = global_magnitude_masks(weights, ranks, s)
        xs.append(measured(masks))
        ys.append(accuracy(masks))
    dense = ys[0] if xs[0] == 0 else accuracy({k: torch.ones_like(w, dtype=torch.bool) for k, w in weights.items()})
    curves = [_make_curve("unstructured", xs, ys, [""] * len(xs), dense, max_drop, min_knee_distance)]
    points: dict[str, dict[str, float]] = {}
    for m in sorted({p.m for p in patterns}):
        rows = []
        for n in range(m, 0, -1):
            masks = nm_masks(weights, NMPattern(n, m))
            rows.append((measured(masks), accuracy(masks), f"{n}:{m}"))
        rows.sort()
        curve = _make_curve(f"N:{m}", [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], dense,
                            max_drop, min_knee_distance)
        curves.append(curve)
        for p in patterns:
            if p.m == m:
                i = curve.labels.index(p.name)
                points[p.name] = {"sparsity": curve.sparsity[i], "accuracy": curve.accuracy[i]}
    net.load_state_dict(state)  # leave the network as it came
    return Snapshot(epoch=float(epoch), step=int(step), dense_accuracy=dense, curves=tuple(curves),
                    points=points, seconds=time.perf_counter() - started)


def _make_curve(pattern: str, xs: list[float], ys: list[float], labels: list[str], dense: float,
                max_drop: float, min_knee_distance: float) -> Curve:
    # distinct measured sparsities only (two grid values can round to the same count on a tiny network)
    keep = [i for i in range(len(xs)) if i == 0 or xs[i] > xs[i - 1]]
    xs, ys, labels = [xs[i] for i in keep], [ys[i] for i in keep], [labels[i] for i in keep]
    if len(xs) < 2:
        return Curve(pattern, tuple(xs), tuple(ys), tuple(labels), xs[0], True, None)
    essential, censored = essential_by_drop(xs, ys, max_drop=max_drop, reference=dense)
    knee = knee_by_chord(xs, ys, min_distance=min_knee_distance)
    return Curve(pattern, tuple(xs), tuple(ys), tuple(labels), essential, censored, knee)


# ----------------------------------------------------------------------------------------- snapshots


class WeightSnapshots(Callback):
    """Keep a CPU copy of the network's ``state_dict`` ``per_epoch`` times per epoch (and at the end), in memory.

    The snapshot after step ``t`` is recorded as ``(t / steps_per_epoch, t, state)``. Nothing is written to
    disk, so the callback has no state to restore: a sweep over training is one uninterrupted run.
    """

    def __init__(self, model: MaskedModel, per_epoch: int = 1) -> None:
        if isinstance(per_epoch, bool) or not isinstance(per_epoch, int) or per_epoch < 1:
            raise InputError(f"--snapshots-per-epoch must be a positive integer, got {per_epoch!r}")
        self.model, self.per_epoch = model, per_epoch
        self.snapshots: list[tuple[float, int, dict[str, torch.Tensor]]] = []
        self._offsets: set[int] = set()

    def on_start(self, trainer: Trainer) -> None:  # noqa: D102
        spe = trainer.steps_per_epoch
        self._offsets = {round(spe * j / self.per_epoch) % spe for j in range(1, self.per_epoch + 1)}

    def _take(self, trainer: Trainer) -> None:
        if self.snapshots and self.snapshots[-1][1] == trainer.step:
            return
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.net.state_dict().items()}
        self.snapshots.append((trainer.step / trainer.steps_per_epoch, trainer.step, state))

    def on_step(self, trainer: Trainer) -> None:  # noqa: D102
        if trainer.step % trainer.steps_per_epoch in self._offsets:
            self._take(trainer)

    def on_end(self, trainer: Trainer) -> None:  # noqa: D102
        self._take(trainer)


# ----------------------------------------------------------------------------------------- sources


def _build_net(config: RunConfig, data: Dataset) -> nn.Module:
    from strongticket.train.run import meta_model

    return meta_model(config, data).to_empty(device="cpu")


def _run_data(config: RunConfig, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """The run's data exactly as ``strongticket train`` prepares it (the same seeded subsets)."""
    data = load_dataset(config.data.dataset, data_dir, "cpu")
    d = config.data
    if d.train_subset or d.test_subset:
        data = data.subset(d.train_subset, d.test_subset, seed=derive_seed(config.seed, "subset"))
    return data


def load_dense_run(run_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None
                   ) -> tuple[RunConfig, dict[str, Any], Dataset, nn.Module]:
    """Rebuild the trained network of a finished dense run (``config.json`` + ``model.safetensors``).

    Returns
    -------
    (RunConfig, dict, Dataset, nn.Module)
        The run's configuration, its ``summary.json``, its data (CPU; the run's seeded test subset if any) and
        the network holding its final weights (CPU).

    Raises
    ------
    InputError
        Not a run directory, not finished, not dense (a pruned model has no dense accuracy to drop from),
        ``model.safetensors`` missing or not of the run's architecture.
    """
    from safetensors.torch import load_file

    from strongticket.files import read_json_object
    from strongticket.train.rundir import RunDir

    path = Path(run_dir)
    where = f"--run {str(run_dir)!r}"
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        raise InputError(f"{where} must be a finished dense run directory, got {found} there")
    if not (path / "config.json").is_file():
        raise InputError(f"{where} is not a run directory (no config.json); give a `strongticket train` output")
    meta = read_json_object(path / "config.json", InputError)
    config = RunConfig.from_dict(meta.get("config", {}))
    if config.prune.method != "dense":
        raise InputError(f"{where} is a {config.prune.method} run (density {config.prune.density}), not a dense "
                         "one: essential sparsity prunes a trained dense model; pass a run of --method dense")
    summary = RunDir(path).read_summary()
    if summary is None:
        raise InputError(f"{where} is not finished (no summary.json); finish it with the same `strongticket "
                         "train` command")
    model_file = path / "model.safetensors"
    if not model_file.is_file():
        raise InputError(f"{where} has no model.safetensors")
    try:
        weights = load_file(str(model_file))
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        raise InputError(f"{where}: model.safetensors cannot be read: {exc}") from None
    data = _run_data(config, data_dir)
    net = _build_net(config, data)
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise InputError(f"{where}: model.safetensors does not fit {config.model.model}: "
                         f"{first[0].strip()}") from None
    return config, summary, data, net


def train_dense_with_snapshots(config: RunConfig, data: Dataset, *, per_epoch: int = 1,
                               device: str | torch.device = "cpu") -> tuple[nn.Module, WeightSnapshots, float]:
    """Train the dense run ``config`` with the one loop and keep the weights ``per_epoch`` times an epoch.

    The network, its initialisation, the optimiser, the data order and the augmentation are those of
    ``strongticket train`` with the same configuration (the same seeded streams), so the last snapshot is the
    ``model.safetensors`` that command would write on the same device. With ``model.init_from`` set the
    network starts from that run's weights (a fine-tuning run).

    Returns
    -------
    (nn.Module, WeightSnapshots, float)
        The trained network, the callback holding the snapshots, and the training seconds.
    """
    from strongticket.train.pretrained import load_pretrained

    net = _build_net(config, data)
    init_weights(net, config.model.init, torch.Generator().manual_seed(derive_seed(config.seed, "init")))
    if config.model.init_from is not None:
        load_pretrained(net, config.model.init_from)
    data = data.to(device)
    net = net.to(device)
    model = MaskedModel(net)
    snaps = WeightSnapshots(model, per_epoch)
    trainer = Trainer(model, data, config.optim, [p for p in model.parameters() if p.requires_grad],
                      seed=config.seed, batch_size=config.data.batch_size,
                      augment=config.data.augment or data.augment, callbacks=[snaps])
    started = time.perf_counter()
    trainer.run()
    return net, snaps, time.perf_counter() - started


# ----------------------------------------------------------------------------------------- driver


def essential_sparsity(*, run_dir: str | os.PathLike[str] | None = None, config: RunConfig | None = None,
                       data_dir: str | os.PathLike[str] | None = None, device: str = "cpu",
                       sparsities: Sequence[float] | None = None,
                       patterns: Sequence[NMPattern] = tuple(parse_pattern(p) for p in DEFAULT_PATTERNS),
                       max_drop: float = DEFAULT_MAX_DROP, min_knee_distance: float = DEFAULT_MIN_KNEE_DISTANCE,
                       per_epoch: int = 1, prune_output: bool = True,
                       note: Callable[[str], None] | None = None) -> EssentialResult:
    """Sweep a finished dense run (``run_dir``), or train the dense run ``config`` and sweep every snapshot.

    Parameters
    ----------
    run_dir : path or None
        A finished ``strongticket train --method dense`` directory: its final weights are swept (one snapshot).
    config : RunConfig or None
        A dense run's configuration: trained here with :class:`WeightSnapshots`, every snapshot swept.
        Exactly one of ``run_dir`` and ``config``.
    data_dir, device
        Where the dataset is (``$STRONGTICKET_DATA`` when None) and where training and sweeps run.
    sparsities : sequence of float or None
        The unstructured grid (default :data:`DEFAULT_SPARSITIES`); 0 is added.
    patterns : sequence of NMPattern
        N:M patterns reported beside unstructured (each one's family is swept).
    max_drop, min_knee_distance : float
        Thresholds of definitions (a) (accuracy fraction, 0.01 = 1 point) and (b).
    per_epoch : int
        Snapshots per epoch when training.
    prune_output : bool
        Whether the output layer is pruned with the others.
    note : callable, optional
        Receives one-line progress messages.

    Raises
    ------
    InputError
        Both or neither source, a configuration that is not a dense run, bad thresholds (and see
        :func:`load_dense_run`).
    """
    from strongticket.train.run import resolve_config, resolve_device

    if (run_dir is None) == (config is None):
        raise InputError("pass exactly one of --run RUN_DIR (a finished dense run) or --config FILE (a dense run "
                         f"to train), got {'both' if run_dir is not None else 'neither'}")
    if not 0 <= max_drop < 1:
        raise InputError(f"--max-drop must be in [0, 100) accuracy points, got {100 * max_drop:g}")
    if not min_knee_distance >= 0:
        raise InputError(f"--min-knee-distance must be >= 0, got {min_knee_distance}")
    grid = tuple(sparsities) if sparsities is not None else parse_sparsities(DEFAULT_SPARSITIES)
    if not grid or grid[0] != 0 or any(b <= a for a, b in zip(grid, grid[1:])) or grid[-1] >= 1:
        raise InputError(f"sparsities must increase from 0 and stay below 1, got {list(grid)}")
    patterns = tuple(dict.fromkeys(patterns))
    dev = resolve_device(device)
    seconds: dict[str, float] = {}
    if run_dir is not None:
        cfg, run_summary, data, net = load_dense_run(run_dir, data_dir)
        source = {"kind": "run", "run_dir": str(run_dir), "run_test_accuracy": run_summary.get("test_accuracy"),
                  "config": cfg.to_dict()}
        last = (run_summary.get("phases") or {}).get("train") or {}
        states = [(float(cfg.optim.epochs), int(last.get("step", 0) or 0),
                   {k: v.clone() for k, v in net.state_dict().items()})]
        net = net.to(dev)
    else:
        if config.prune.method != "dense":
            raise InputError(f"--config must describe a dense run ([prune] method = \"dense\"), got method "
                             f"{config.prune.method!r}: essential sparsity prunes a trained dense model")
        cfg = resolve_config(config)
        data = _run_data(cfg, data_dir)
        cfg = resolve_config(cfg, data)
        if note is not None:
            note(f"training {cfg.model.model} on {cfg.data.dataset} for {cfg.optim.epochs} epochs, "
                 f"{per_epoch} snapshot(s) per epoch")
        net, snaps, seconds["train"] = train_dense_with_snapshots(cfg, data, per_epoch=per_epoch, device=dev)
        source = {"kind": "config", "config": cfg.to_dict(), "snapshots_per_epoch": per_epoch}
        states = snaps.snapshots
    data = data.to(dev)
    names = prunable_names(net, prune_output=prune_output)
    started, cpu_started = time.perf_counter(), time.process_time()
    snapshots = []
    for epoch, step, state in states:
        snap = sweep_snapshot(net, {k: v.to(dev) for k, v in state.items()}, data, names, sparsities=grid,
                              patterns=patterns, max_drop=max_drop, min_knee_distance=min_knee_distance,
                              epoch=epoch, step=step)
        snapshots.append(snap)
        if note is not None:
            u = snap.curve("unstructured")
            note(f"epoch {epoch:.3g}: dense {100 * snap.dense_accuracy:.2f}%, essential sparsity "
                 f"{u.essential:.3f}, knee {_opt(u.knee, '.3f')} ({snap.seconds:.2f} s)")
    seconds["sweep"] = time.perf_counter() - started
    # processor seconds of this process (all its threads): the figure that a busy shared machine does not inflate
    seconds["sweep_cpu"] = time.process_time() - cpu_started
    params = dict(net.named_parameters())
    return EssentialResult(source=source, model=cfg.model.model, dataset=cfg.data.dataset,
                           prunable=sum(params[k].numel() for k in names), prunable_names=tuple(names),
                           patterns=tuple(p.name for p in patterns), max_drop=max_drop,
                           min_knee_distance=min_knee_distance, snapshots=tuple(snapshots), seconds=seconds)


__all__ = ["DEFAULT_PATTERNS", "DEFAULT_SPARSITIES", "Curve", "EssentialResult", "NMPattern", "Snapshot",
           "WeightSnapshots", "essential_by_drop", "essential_sparsity", "global_magnitude_masks", "knee_by_chord",
           "load_dense_run", "magnitude_ranks", "nm_mask", "nm_masks", "parse_pattern", "parse_sparsities",
           "sweep_accuracy", "sweep_snapshot", "train_dense_with_snapshots"]
