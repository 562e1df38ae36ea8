"""The depth-2L fully connected block, stage by stage: target -> random spec -> instances -> masks.

Shared by :mod:`strongticket.construct.pensia` (subset sum per weight) and
:mod:`strongticket.construct.malach` ("find one" per weight); they differ only in how a subset is chosen.

Layout of the block for one target layer ``W`` (``d_out x d_in``), with ``H`` hidden neurons per input
(Pensia et al. 2020, Fig. 1; ``docs/constructions.md``):

* random layer ``M1`` (``H*d_in x d_in``), ReLU: hidden neuron ``h = j*H + r`` (``r < H``) belongs to input
  ``j``; the mask keeps at most its entry ``M1[h, j] = u[j, r]`` (univariate neurons, block-diagonal);
* random layer ``M2`` (``d_out x H*d_in``), then the target's activation: output ``k`` keeps the entries
  ``M2[k, j*H + r] = v[k, j, r]`` of the chosen subsets.

By positive homogeneity of ReLU, the pruned block computes exactly
``out_k = sum_j A+[k, j] relu(x_j) + A-[k, j] relu(-x_j)`` with ``A+ = sum_{S+} v u`` over kept neurons with
``u > 0`` and ``A- = sum_{S-} v |u|`` over kept neurons with ``u < 0``. Since ``x = relu(x) - relu(-x)``,
the block equals ``W x`` up to ``E+ = A+ - W`` on positive and ``E- = A- + W`` on negative coordinates.
So each target weight gives two subset-sum instances over the products ``p = v u`` (exact in float64): the
neurons with ``u > 0`` must sum to ``w`` and the neurons with ``u < 0`` must sum to ``w`` too
(``sum_{S-} v |u| = -sum_{S-} p ~ -w``).

Sample counts. The weights are the random draw bit for bit, so the signs of the ``u``'s cannot be chosen:
input ``j`` gets ``H`` hidden neurons (the *block size*) and the instances of one sign use, as candidates,
exactly the first ``n`` neurons of that sign in the block (``n``, the samples per weight, as in Pensia et
al.'s experiment); the block's other neurons are pruned. ``H`` must leave at least ``n`` neurons of every
needed sign in every block; the number of a sign is ``Binomial(H, p)`` with ``p = P(u > 0)`` or ``P(u < 0)``,
so :func:`block_size_for` picks the smallest ``H`` for which a binomial tail plus a union bound over the
(block, sign) pairs is at most ``delta`` (``H ~ 2n + O(sqrt(n log(d / delta)))`` for ``p = 1/2``). Only
needed signs count: a block whose input is ``>= 0`` (after a ReLU, non-negative data) uses ``u > 0`` only.
A block that still has fewer than ``n`` neurons of a needed sign (probability at most ``delta``) is listed
by :func:`short_inputs`; the construction then raises or, when not strict, uses all it has and records it.

Biases (documented choice): a target with biases is extended by a constant input channel. The random
network's input gets one extra coordinate fixed to 1 (``NetSpec.input_constant``), every block but the last
gets one extra output that approximates the constant 1 (``relu(1) = 1`` carries it on), and target layer
``i`` is replaced by ``[[W_i, b_i], [0, 1]]`` (the last by ``[W_L, b_L]``). The random network itself has no
biases, as in the theorem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.spec import Flatten, Linear, NetSpec
from strongticket.nets.trace import TracedNet, trace_module
from strongticket.subsetsum.problem import Status, approximation_errors, selection_sums

#: Target activations a 2L block construction supports (applied after the block's second layer).
BLOCK_ACTIVATIONS = ("relu", "identity")

#: Elements drawn per chunk when a construction reads a random layer (bounds the generator's int64/float64
#: buffers to 8 MB each; the values do not depend on it, :meth:`WeightDistribution.iter_rows`).
DRAW_ELEMENTS = 1 << 20


@dataclass(frozen=True, eq=False)
class FCTarget:
    """A fully connected ReLU target, ready for a 2L construction.

    Attributes
    ----------
    traced : TracedNet
        The target's spec and weights (spec parameter names).
    weights : tuple of float64 arrays
        Per target layer, the (augmented when ``constant``) matrix the block must approximate,
        shape ``(d_out[+1], d_in[+1])``.
    activations : tuple of str
        Activation after each target layer (``relu`` or ``identity``).
    flatten : bool
        True when the target starts with ``Flatten`` (image inputs).
    constant : bool
        True when biases are realised by the constant input channel.
    input_shape : tuple of int or None
        Shape of one input sample.
    """

    traced: TracedNet
    weights: tuple[np.ndarray, ...]
    activations: tuple[str, ...]
    flatten: bool
    constant: bool
    input_shape: tuple[int, ...] | None

    @property
    def num_layers(self) -> int:
        """L, the number of target layers."""
        return len(self.weights)

    @property
    def widths(self) -> tuple[int, ...]:
        """``(d_0, d_1, ..., d_L)`` of the target itself (without the constant channel)."""
        ws = [w.shape[1] - int(self.constant) for w in self.weights]
        return tuple(ws) + (self.weights[-1].shape[0],)

    @property
    def num_weights(self) -> int:
        """Number of target parameters (weights and biases)."""
        return sum(int(t.numel()) for t in self.traced.state.values())


def read_fc_target(target: nn.Module | TracedNet, input_shape: tuple[int, ...] | None = None,
                   construction: str = "pensia") -> FCTarget:
    """Check that ``target`` is a chain of ``Linear`` layers (ReLU/identity), optionally after ``Flatten``.

    Raises
    ------
    InputError
        Naming the first unsupported layer or activation and listing what the construction supports.
    """
    traced = target if isinstance(target, TracedNet) else trace_module(target, input_shape)
    layers = list(traced.spec.layers)
    flatten = bool(layers) and isinstance(layers[0], Flatten)
    if flatten:
        if layers[0].activation != "identity":
            raise InputError(f"{construction}: unsupported activation {layers[0].activation!r} after Flatten")
        layers = layers[1:]
    offset = 1 if flatten else 0
    supported = (f"the {construction} construction supports fully connected targets: an optional leading "
                 f"Flatten, then Linear layers with activations {BLOCK_ACTIVATIONS}")
    if not layers:
        raise InputError(f"target has no Linear layer; {supported}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Linear):
            raise InputError(f"unsupported layer {type(layer).__name__} at position {i + offset} of the target; "
                             f"{supported} (for CNN targets use the cnn2l or structured constructions)")
        if layer.activation not in BLOCK_ACTIVATIONS:
            raise InputError(f"unsupported activation {layer.activation!r} after layer {i + offset}; {supported}")
    for a, b in zip(layers, layers[1:]):
        if a.out_features != b.in_features:
            raise InputError(f"target layers do not chain: {a.out_features} outputs feed {b.in_features} inputs")
    constant = any(layer.bias for layer in layers)
    mats = []
    for i, layer in enumerate(layers):
        idx = i + offset
        w = traced.state[f"layers.{idx}.weight"].detach().to(torch.float64).cpu().numpy()
        if not np.all(np.isfinite(w)):
            raise InputError(f"target layer {idx} has non-finite weights")
        if constant:
            b = traced.state.get(f"layers.{idx}.bias")
            b = np.zeros(w.shape[0]) if b is None else b.detach().to(torch.float64).cpu().numpy()
            w = np.concatenate([w, b[:, None]], axis=1)
            if i < len(layers) - 1:
                row = np.zeros((1, w.shape[1]))
                row[0, -1] = 1.0
                w = np.concatenate([w, row], axis=0)
        mats.append(np.ascontiguousarray(w))
    shape = traced.spec.input_shape
    if shape is None and not flatten:
        shape = (layers[0].in_features,)
    return FCTarget(traced=traced, weights=tuple(mats), activations=tuple(layer.activation for layer in layers),
                    flatten=flatten, constant=constant, input_shape=shape)


def random_spec(target: FCTarget, hidden_per_input: int) -> NetSpec:
    """The depth-2L random network: per target layer ``Linear(d_in, H*d_in, relu)``, ``Linear(H*d_in, d_out, act)``.

    Dimensions include the constant channel when the target has biases; no random layer has a bias.
    """
    if hidden_per_input < 1:
        raise InputError(f"hidden neurons per input must be >= 1, got {hidden_per_input}")
    layers: list = [Flatten()] if target.flatten else []
    for w, act in zip(target.weights, target.activations):
        d_out, d_in = w.shape
        m = hidden_per_input * d_in
        layers += [Linear(d_in, m, bias=False, activation="relu"), Linear(m, d_out, bias=False, activation=act)]
    return NetSpec(tuple(layers), input_shape=target.input_shape, input_constant=target.constant)


def block_parameter_names(spec: NetSpec) -> list[tuple[str, str]]:
    """``[(first, second), ...]``: the parameter names of each block's two random layers."""
    idx = list(spec.linear_layers)
    if len(idx) % 2:
        raise InputError(f"a 2L block network has an even number of Linear layers, got {len(idx)}")
    return [(f"layers.{a}.weight", f"layers.{b}.weight") for a, b in zip(idx[::2], idx[1::2])]


def first_layer_diagonal(dist, name: str, shape: tuple[int, int], seed: int, hidden_per_input: int) -> np.ndarray:
    """``u[j, r] = M1[j*H + r, j]``, shape ``(d_in, H)`` float32, read from ``M1`` in bounded memory."""
    m, d_in = shape
    H = hidden_per_input
    out = np.empty((d_in, H), dtype=np.float32)
    row = 0
    for chunk in dist.iter_rows(name, shape, seed, fan_in=d_in, chunk_elements=DRAW_ELEMENTS):
        c = chunk.numpy()
        rows = np.arange(row, row + c.shape[0])
        out.reshape(-1)[rows] = c[np.arange(c.shape[0]), rows // H]
        row += c.shape[0]
    return out


def shortfall_probability(block_size: int, samples: int, p: float) -> float:
    """``P(Binomial(block_size, p) < samples)``: a block of ``block_size`` neurons has too few of one sign.

    Exact sum of the binomial terms in log space (``math.lgamma``), float64.
    """
    H, n = int(block_size), int(samples)
    if n <= 0:
        return 0.0
    if H < n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    logs = [math.lgamma(H + 1) - math.lgamma(k + 1) - math.lgamma(H - k + 1) + k * lp + (H - k) * lq
            for k in range(n)]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(x - top) for x in logs))


def block_size_for(samples: int, delta: float, needs: Sequence[tuple[int, float]]) -> int:
    """The smallest block size ``H`` with ``sum_k count_k * P(Binomial(H, p_k) < samples) <= delta``.

    Parameters
    ----------
    samples : int
        ``n``, neurons of one sign every instance needs (its candidates).
    delta : float in (0, 1)
        Allowed probability that some block is short (union bound over ``needs``).
    needs : sequence of (count, p)
        ``count`` (block, sign) pairs, each needing ``samples`` neurons of a sign drawn with probability ``p``.

    Returns
    -------
    int
        ``H >= samples`` (``samples`` when nothing is needed).

    Raises
    ------
    InputError
        For ``samples < 1``, ``delta`` outside (0, 1) or a needed sign with probability 0.
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InputError(f"samples must be a positive integer, got {samples!r}")
    if not 0 < delta < 1:
        raise InputError(f"delta must be in (0, 1), got {delta!r}")
    needs = [(int(c), float(p)) for c, p in needs if c > 0]
    for _, p in needs:
        if not p > 0:
            raise InputError("the weight law never gives a sign the construction needs (P = 0): pick a law "
                             "with both signs, e.g. uniform(-1, 1)")

    def bound(H: int) -> float:
        return sum(c * shortfall_probability(H, samples, p) for c, p in needs)

    lo, hi = int(samples), int(samples)
    if bound(lo) <= delta:
        return lo
    while bound(hi) > delta:  # doubling, then bisection: the bound decreases in H
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bound(mid) <= delta:
            hi = mid
        else:
            lo = mid
    return hi


def short_inputs(u: np.ndarray, samples: int, negative_side: bool = True) -> list[tuple[int, str, int]]:
    """``[(j, sign, available), ...]``: inputs whose block has fewer than ``samples`` neurons of a needed sign.

    ``u`` is the first-layer diagonal ``(d_in, H)``; ``sign`` is ``"+"`` or ``"-"``.
    """
    out = []
    sides = ((u > 0, "+"), (u < 0, "-")) if negative_side else ((u > 0, "+"),)
    for sel, name in sides:
        cnt = sel.sum(axis=1)
        out += [(int(j), name, int(cnt[j])) for j in np.nonzero(cnt < samples)[0]]
    return sorted(out)


# A choose function takes targets (T,) and candidates (T, c), both float64, and returns (selection (T, c) bool,
# status (T,) int8, info dict).
ChooseFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, dict]]
# A reach function takes candidates (T, c) float64 and returns (lo, hi), each (T,): every value a choice over
# those candidates can produce lies in [lo, hi].
ReachFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def subset_sum_reach(candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sum of the negative candidates, sum of the positive ones)`` per row: the range of every subset sum."""
    c = np.asarray(candidates, dtype=np.float64)
    return np.minimum(c, 0).sum(axis=1), np.maximum(c, 0).sum(axis=1)


def single_reach(candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(min(0, min c), max(0, max c))`` per row: the range of choosing one candidate or none."""
    c = np.asarray(candidates, dtype=np.float64)
    if c.shape[1] == 0:
        return np.zeros(c.shape[0]), np.zeros(c.shape[0])
    return np.minimum(c.min(axis=1), 0), np.maximum(c.max(axis=1), 0)


@dataclass(frozen=True)
class Chooser:
    """How a construction picks, per instance, the random products that approximate a target weight.

    Attributes
    ----------
    name : str
        Recorded in the provenance (``"subset_sum"``, ``"find_one"``).
    choose : ChooseFn
        Picks subsets for a group of instances with equal candidate count (the first ``n`` of a sign).
    reach : ReachFn
        Range of the values ``choose`` can produce from given candidates: a target outside it cannot be met
        with those candidates, whatever the solver.
    choose_wide : ChooseFn or None
        The same choice for the wider pool (every neuron of the sign in the block, possibly more candidates
        than ``choose`` accepts); None: ``choose`` itself.
    """

    name: str
    choose: ChooseFn
    reach: ReachFn = subset_sum_reach
    choose_wide: ChooseFn | None = None


#: Misses listed one by one in a block's outcome (the count is always complete).
MAX_LISTED = 200


@dataclass(frozen=True, eq=False)
class BlockResult:
    """One assembled block: masks of both random layers and the per-weight outcome.

    Attributes
    ----------
    mask1 : bool tensor, shape (H*d_in, d_in)
        A property, made from ``used`` on each access (the block keeps only ``used``: a layer solved in units
        would otherwise hold a mostly empty ``(H d_in, d_in)`` array per unit).
    mask2 : bool tensor, shape (d_out, H*d_in)
    errors_pos, errors_neg : float64 arrays, shape (d_out, d_in)
        |A+ - W| and |A- + W| per target weight as the chooser's sums give them.
    counts_pos, counts_neg : int arrays, shape (d_in,)
        Candidates per instance for each input in the first pass: ``min(samples, available)`` of the sign.
    available_pos, available_neg : int arrays, shape (d_in,)
        Neurons with u > 0, u < 0 in each input's block (the wider pool of its instances).
    status : dict
        Status name -> number of instances (final, after the wider-pool retry).
    subset_sizes : int array, shape (2, d_out, d_in)
        Kept second-layer entries per instance (+ then -).
    info : list of dict
        The chooser's info per solved group (``"pass": "first"`` or ``"wider_pool"``).
    retried : int array, shape (R, 3)
        ``(sign, row, col)`` (sign 0: u > 0, 1: u < 0) of the instances that missed ``eps`` with their first
        candidates and were solved again over every neuron of their sign in the block.
    recovered : int
        How many of ``retried`` end within ``eps``.
    misses : list of dict
        Instances still above ``eps``, up to :data:`MAX_LISTED`, each with its reason (see :func:`classify_miss`).
    miss_reasons : dict
        Reason -> number of instances (complete).
    used : bool array, shape (d_in, H)
        Hidden neuron ``(j, r)`` is kept by some instance (``mask1``'s diagonal).
    """

    mask2: torch.Tensor
    errors_pos: np.ndarray
    errors_neg: np.ndarray
    counts_pos: np.ndarray
    counts_neg: np.ndarray
    available_pos: np.ndarray
    available_neg: np.ndarray
    status: dict[str, int]
    subset_sizes: np.ndarray
    info: list[dict]
    retried: np.ndarray
    recovered: int
    misses: list[dict]
    miss_reasons: dict[str, int]
    used: np.ndarray

    @property
    def mask1(self) -> torch.Tensor:
        """The first layer's mask ``(H d_in, d_in)``: hidden neuron ``j H + r`` keeps ``u[j, r]`` if it is used."""
        return torch.from_numpy(mask1_from_used(self.used))


def mask1_from_used(used: np.ndarray) -> np.ndarray:
    """The univariate first layer's mask, bool ``(H d_in, d_in)``, from ``used`` ``(d_in, H)``: row ``j H + r``
    keeps column ``j`` where ``used[j, r]``."""
    d_in, H = used.shape
    mask1 = np.zeros((d_in * H, d_in), dtype=bool)
    mask1[np.arange(d_in * H), np.repeat(np.arange(d_in), H)] = used.reshape(-1)
    return mask1


def classify_miss(weight: float, error: float, eps: float, lo: float, hi: float, pool: int, status: int,
                  searched_pool: bool = True) -> dict:
    """Why one instance ends above ``eps``: its target lies outside the reachable range, or no choice was found.

    Parameters
    ----------
    weight, error, eps : float
        Target weight, final error and tolerance.
    lo, hi : float
        Range every choice over the instance's whole pool can produce (:attr:`Chooser.reach`).
    pool : int
        Neurons of the instance's sign in its block.
    status : int
        Final :class:`~strongticket.subsetsum.problem.Status` of the instance.
    searched_pool : bool
        The last attempt had the whole pool as candidates (else only the first ``n``).

    Returns
    -------
    dict
        ``reason``: ``"outside_range"`` when ``weight`` is farther than ``eps`` from ``[lo, hi]``; then more
        samples per weight cannot help (the pool is exhausted) and ``law_scale`` is the factor by which both
        random layers' laws must be scaled for the products to reach it (products scale with its square; None
        when the pool has no product of the needed sign, which no scale mends).
        Otherwise ``"not_found"``, with ``proved`` True when the solver proved that no choice over the whole
        pool is within ``eps``; ``searched_pool`` is recorded either way.
    """
    out = {"weight": float(weight), "error": float(error), "pool": int(pool), "reach": [float(lo), float(hi)],
           "searched_pool": bool(searched_pool)}
    if weight > hi + eps or weight < lo - eps:
        edge = hi if weight > hi else lo
        need = abs(weight) - eps
        scale = math.sqrt(need / abs(edge)) if edge != 0 else None  # None: no product of that sign, no scale helps
        out.update(reason="outside_range", law_scale=scale)
    else:
        out.update(reason="not_found", proved=bool(searched_pool) and int(status) == int(Status.INFEASIBLE))
    return out


def assemble_block(w: np.ndarray, u: np.ndarray, v: np.ndarray, choose: Chooser | ChooseFn, *,
                   samples: int | None = None, negative_side: bool = True, eps: float | None = None,
                   wider_pool: bool = True) -> BlockResult:
    """Build every instance of one block, choose subsets group by group, and return the masks.

    Parameters
    ----------
    w : float64 array, shape (d_out, d_in)
        Target matrix.
    u : float32 array, shape (d_in, H)
        First-layer diagonal (:func:`first_layer_diagonal`).
    v : float32 array, shape (d_out, d_in * H)
        Second random layer.
    choose : Chooser or ChooseFn
        Selects subsets for a group of instances with equal candidate count (a bare function is a subset-sum
        chooser that also handles the wider pool).
    samples : int, optional
        Candidates per instance: the first ``samples`` neurons of the instance's sign in its block (fewer
        only where the block has fewer, see :func:`short_inputs`); None uses every neuron of the sign.
    negative_side : bool
        Solve the ``u < 0`` instances. A block whose input is >= 0 (after a ReLU, or non-negative data) never
        uses ``relu(-x)``, so its negative side is left empty (errors reported as 0: they never act).
    eps : float, optional
        Per-weight tolerance. With ``wider_pool``, an instance whose first ``samples`` candidates miss it is
        solved again over every neuron of its sign in the block (``Chooser.choose_wide``) and keeps the better
        choice; the misses left are classified by :func:`classify_miss`.
    wider_pool : bool
        Retry misses over the whole pool (needs ``eps``).
    """
    chooser = choose if isinstance(choose, Chooser) else Chooser("custom", choose)
    wide = chooser.choose_wide or chooser.choose
    d_out, d_in = w.shape
    H = u.shape[1]
    if v.shape != (d_out, d_in * H):
        raise InputError(f"second layer must have shape {(d_out, d_in * H)}, got {v.shape}")
    u64 = u.astype(np.float64)
    v3 = v.reshape(d_out, d_in, H)
    mask2 = np.zeros((d_out, d_in, H), dtype=bool)
    errors = np.zeros((2, d_out, d_in))
    sizes = np.zeros((2, d_out, d_in), dtype=np.int32)
    status = np.full((2, d_out, d_in), Status.OPTIMAL, dtype=np.int8)
    counts = np.zeros((2, d_in), dtype=np.int64)
    available = np.zeros((2, d_in), dtype=np.int64)
    infos: list[dict] = []
    sides = 2 if negative_side else 1
    orders = []
    for s, sel_sign in enumerate((u > 0, u < 0)):
        available[s] = sel_sign.sum(axis=1)
        cnt = available[s] if samples is None else np.minimum(available[s], samples)
        counts[s] = cnt
        orders.append(np.argsort(~sel_sign, axis=1, kind="stable"))  # neurons of this sign first, in r order
        if s >= sides:
            counts[s] = 0
            break
        for c in np.unique(cnt):
            js = np.nonzero(cnt == c)[0]
            targets = w[:, js].reshape(-1)
            if c == 0:
                errors[s][:, js] = np.abs(w[:, js])
                continue
            idx = orders[s][js, :c]  # (|js|, c)
            # products v*u of two float32 values are exact in float64
            cand = v3[:, js[:, None], idx].astype(np.float64) * u64[js[:, None], idx][None]
            cand = cand.reshape(-1, int(c))
            selection, st, info = chooser.choose(targets, cand)
            sums = selection_sums(cand, selection)
            err = approximation_errors(targets, sums)
            errors[s][:, js] = err.reshape(d_out, len(js))
            sizes[s][:, js] = selection.sum(axis=1).reshape(d_out, len(js))
            status[s][:, js] = np.asarray(st, dtype=np.int8).reshape(d_out, len(js))
            mask2[:, js[:, None], idx] |= selection.reshape(d_out, len(js), int(c))
            infos.append({"pass": "first", "sign": "+-"[s], "candidates": int(c), "instances": int(targets.size),
                          **info})
    retried = np.zeros((0, 3), dtype=np.int64)
    recovered = 0
    if eps is not None and wider_pool:
        retried, recovered = _retry_wider_pool(w, u64, v3, orders, available, counts, sides, eps, wide, mask2,
                                               errors, sizes, status, infos)
    misses: list[dict] = []
    reasons: dict[str, int] = {}
    if eps is not None:
        whole = np.zeros(errors.shape, dtype=bool)  # the last attempt searched every neuron of the sign
        whole[:] = (counts == available)[:, None, :]
        whole[retried[:, 0], retried[:, 1], retried[:, 2]] = True
        misses, reasons = _classify_misses(w, u64, v3, orders, available, sides, eps, chooser.reach, errors,
                                           status, whole)
    used = mask2.any(axis=0)  # (d_in, H): hidden neuron (j, r) is used by some output
    counted: dict[str, int] = {}
    _count(counted, status[:sides].reshape(-1))
    return BlockResult(mask2=torch.from_numpy(mask2.reshape(d_out, d_in * H)),
                       errors_pos=errors[0], errors_neg=errors[1], counts_pos=counts[0], counts_neg=counts[1],
                       available_pos=available[0], available_neg=available[1], status=counted,
                       subset_sizes=sizes, info=infos, retried=retried, recovered=recovered, misses=misses,
                       miss_reasons=reasons, used=used)


def _pool_candidates(v3: np.ndarray, u64: np.ndarray, order: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     c: int) -> tuple[np.ndarray, np.ndarray]:
    """Neuron indices ``(m, c)`` and products ``(m, c)`` float64 of the first ``c`` neurons of a sign."""
    idx = order[cols, :c]
    return idx, v3[rows[:, None], cols[:, None], idx].astype(np.float64) * u64[cols[:, None], idx]


def _retry_wider_pool(w, u64, v3, orders, available, counts, sides, eps, wide, mask2, errors, sizes, status,
                      infos) -> tuple[np.ndarray, int]:
    """Solve the instances above ``eps`` again over every neuron of their sign; keep the better choice."""
    done = []
    recovered = 0
    for s in range(sides):
        rows, cols = np.nonzero((errors[s] > eps) & (available[s][None, :] > counts[s][None, :]))
        if rows.size == 0:
            continue
        pools = available[s][cols]
        for c in np.unique(pools):
            pick = pools == c
            r, j = rows[pick], cols[pick]
            idx, cand = _pool_candidates(v3, u64, orders[s], r, j, int(c))
            targets = w[r, j]
            selection, st, info = wide(targets, cand)
            err = approximation_errors(targets, selection_sums(cand, selection))
            better = err < errors[s][r, j]
            for t in np.nonzero(better)[0]:
                mask2[r[t], j[t], orders[s][j[t], :available[s][j[t]]]] = False  # this sign's neurons only
                mask2[r[t], j[t], idx[t][selection[t]]] = True
            errors[s][r[better], j[better]] = err[better]
            sizes[s][r[better], j[better]] = selection[better].sum(axis=1)
            status[s][r[better], j[better]] = np.asarray(st, dtype=np.int8)[better]
            # an instance the retry could not improve keeps its first choice, but the status of the search over
            # the whole pool (a superset of the first candidates) is the one that says whether a choice exists
            worse = ~better
            status[s][r[worse], j[worse]] = np.asarray(st, dtype=np.int8)[worse]
            recovered += int((errors[s][r, j] <= eps).sum())
            infos.append({"pass": "wider_pool", "sign": "+-"[s], "candidates": int(c), "instances": int(r.size),
                          **info})
            done.append(np.stack([np.full(r.size, s), r, j], axis=1))
    if not done:
        return np.zeros((0, 3), dtype=np.int64), recovered
    out = np.concatenate(done).astype(np.int64)
    return out[np.lexsort((out[:, 2], out[:, 1], out[:, 0]))], recovered


def _classify_misses(w, u64, v3, orders, available, sides, eps, reach, errors, status, whole
                     ) -> tuple[list[dict], dict[str, int]]:
    misses: list[dict] = []
    reasons: dict[str, int] = {}
    for s in range(sides):
        rows, cols = np.nonzero(errors[s] > eps)
        pools = available[s][cols]
        for c in np.unique(pools):
            pick = pools == c
            r, j = rows[pick], cols[pick]
            _, cand = _pool_candidates(v3, u64, orders[s], r, j, int(c))
            lo, hi = reach(cand)
            for t in range(r.size):
                m = classify_miss(w[r[t], j[t]], errors[s][r[t], j[t]], eps, lo[t], hi[t], int(c),
                                  status[s][r[t], j[t]], bool(whole[s][r[t], j[t]]))
                reasons[m["reason"]] = reasons.get(m["reason"], 0) + 1
                if len(misses) < MAX_LISTED:
                    misses.append({"sign": "+-"[s], "row": int(r[t]), "col": int(j[t]), **m})
    return misses, reasons


def _count(acc: dict[str, int], status: np.ndarray) -> None:
    values, n = np.unique(np.asarray(status, dtype=np.int8), return_counts=True)
    for val, k in zip(values, n):
        key = Status(int(val)).name.lower()
        acc[key] = acc.get(key, 0) + int(k)


def block_coefficients(m1: np.ndarray, mask1: np.ndarray, m2: np.ndarray, mask2: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(A+, A-)`` of a pruned block, each ``(d_out, d_in)`` float64, from the random weights and masks.

    The pruned block computes exactly ``A+ relu(x) + A- relu(-x)`` provided every kept hidden neuron is
    univariate; raises :class:`InputError` otherwise (the block is then not of this construction's form).
    """
    keep1 = np.asarray(mask1, dtype=bool)
    per_row = keep1.sum(axis=1)
    if np.any(per_row > 1):
        raise InputError(f"{int((per_row > 1).sum())} hidden neurons keep more than one input weight: "
                         "the block is not univariate and has no (A+, A-) form")
    d_out, m = m2.shape
    d_in = m1.shape[1]
    rows = np.nonzero(per_row == 1)[0]
    cols = keep1[rows].argmax(axis=1)
    uu = m1[rows, cols].astype(np.float64)
    vv = np.where(mask2[:, rows], m2[:, rows], 0).astype(np.float64)  # (d_out, |rows|)
    contrib = vv * np.abs(uu)[None]
    a_pos = np.zeros((d_out, d_in))
    a_neg = np.zeros((d_out, d_in))
    pos, neg = uu > 0, uu < 0
    np.add.at(a_pos.T, cols[pos], contrib[:, pos].T)
    np.add.at(a_neg.T, cols[neg], contrib[:, neg].T)
    return a_pos, a_neg


def summarize_errors(errors: np.ndarray, eps: float | None) -> dict:
    """Max, mean, quantiles and the count above ``eps`` of per-weight errors, JSON-able."""
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    out = {"max": float(e.max()), "mean": float(e.mean()), "median": float(np.median(e)),
           "q99": float(np.quantile(e, 0.99)), "count": int(e.size)}
    if eps is not None:
        out["above_eps"] = int((e > eps).sum())
    return out


def spectral_norm(a: np.ndarray) -> float:
    """Largest singular value of ``a`` (float64), slightly inflated to cover the SVD's rounding."""
    if a.size == 0:
        return 0.0
    s = float(np.linalg.norm(a, 2))
    return s * (1 + 1e-12) + 1e-300 if math.isfinite(s) else s
