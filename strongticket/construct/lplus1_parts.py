"""The pieces of the depth-L+1 construction (Burkholz 2022) shared by its fully connected case
(:mod:`strongticket.construct.lplus1`) and its convolutional case (:mod:`strongticket.construct.lplus1_conv`):
the method's constants, the layout of a ticket, the first (copying) layer's selections and scales, the
constant neurons, the instance solving and the certified bound's record.

R. Burkholz, "Most Activation Functions Can Win the Lottery Without Excessive Depth", NeurIPS 2022. The
construction and its theorem are described in :mod:`strongticket.construct.lplus1` and ``docs/constructions.md``;
this module only holds what both cases use, so that neither imports the other.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from strongticket import __version__
from strongticket.errors import InfeasibleError, InputError
from strongticket.nets.activations import REGISTRY, Activation
from strongticket.subsetsum import SubsetSumProblem, solve
from strongticket.subsetsum.problem import Status, approximation_errors, selection_sums
from strongticket.ticket import Ticket, fingerprint

METHOD = "lplus1"


PAPER = "R. Burkholz, \"Most Activation Functions Can Win the Lottery Without Excessive Depth\", NeurIPS 2022"


#: Pre-activation every constant neuron of layers >= 2 approximates (its output phi(1) is then a bias source).
CONSTANT_TARGET = 1.0


#: C in ``rho = ceil(C log2(N / min(eps, delta)))``. Not measured and not from the paper (which gives no
#: constant): chosen so that the paper's experiment setting, rho = 15 at eps = 0.01 for LeNet-300-100
#: (N = 266 610, delta = 0.01), is the default. Give ``rho`` explicitly for anything else.
LPLUS1_C = 0.6


# ----- activations ---------------------------------------------------------------------------------------------
def first_layer_mode(act: Activation) -> str:
    """``"split"`` (exact +- split) or ``"linear"`` (small-weight regime) for the copying layer's activation.

    Raises
    ------
    InputError
        When the registry entry supports neither (listing the activations that are supported).
    """
    if act.positively_homogeneous and act.split and act.remainder is None:
        return "split"
    if act.dphi0 not in (None, 0.0) and act.remainder is not None:
        return "linear"
    ok = [a.name for a in REGISTRY.values() if (a.positively_homogeneous and a.split and a.remainder is None)
          or (a.dphi0 not in (None, 0.0) and a.remainder is not None)]
    raise InputError(f"lplus1: activation {act.name!r} is neither positively homogeneous with phi(x) - phi(-x) = s x "
                     f"nor differentiable at 0 with a remainder bound; supported: {', '.join(ok)}")


def phi64(act: Activation, x: np.ndarray) -> np.ndarray:
    """``phi(x)`` in float64."""
    return act.fn(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


# ----- layout --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Widths of the depth-(L+1) random network and where each neuron sits.

    Attributes
    ----------
    widths : tuple of int
        Target widths ``(n_0, ..., n_L)``.
    rho : int
        Copies per target neuron (and constant neurons per hidden layer) in layers 2..L.
    first_rho : int
        Copying-layer neurons per input.
    const_rho : int
        Neurons of one group of the copying layer's constant block.
    const_groups : int
        Groups in the constant block (1 unless phi(0) != 0): the first is the subset-sum group of every bias
        instance, the others a reserve that cancels large constant offsets greedily (:func:`constant_groups`).
    """

    widths: tuple[int, ...]
    rho: int
    first_rho: int
    const_rho: int
    const_groups: int = 1

    @property
    def const_total(self) -> int:
        """Neurons of the copying layer's constant block, all groups."""
        return self.const_rho * self.const_groups

    @property
    def num_layers(self) -> int:
        """L (the random network has L + 1 layers)."""
        return len(self.widths) - 1

    def rows(self, k: int) -> int:
        """Neurons of random layer ``k + 1`` (``k = 0`` the copying layer, ``k = L`` the output)."""
        if k == 0:
            return self.first_rho * self.widths[0] + self.const_total
        if k == self.num_layers:
            return self.widths[k]
        return self.rho * (self.widths[k] + 1)

    def copies(self, k: int) -> int:
        """Copy rows of random layer ``k + 1`` (the constant rows follow them): ``rho n_k``, or ``n_L``."""
        return self.widths[k] if k == self.num_layers else self.rho * self.widths[k]

    def multiplicity(self, k: int) -> int:
        """Copies per target neuron of layer ``k`` (``k >= 1``)."""
        return 1 if k == self.num_layers else self.rho

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {"widths": list(self.widths), "rho": self.rho, "first_rho": self.first_rho,
                "const_rho": self.const_rho, "const_groups": self.const_groups}


def first_layer_scales(act: Activation, eps: float, radius: float = 1.0, law_bound: float = 1.0
                       ) -> tuple[float, float]:
    """Per-tensor scales ``(lambda_1, lambda_2)`` of the copying layer and random layer 2 for a smooth activation.

    The linear regime (Burkholz 2022, the small-weight first layer of Thm. 2.6): a kept copying neuron with
    weight ``u = lambda_1 u~`` feeding layer 2 with weight ``v = lambda_2 v~`` contributes
    ``v phi(u x) = phi(0) v + phi'(0) v u x + v R(u x)`` with ``|R(y)| <= c y^2`` (the registry's ``remainder``).
    Two choices follow:

    * ``lambda_2 = 1 / (lambda_1 phi'(0))``: then ``phi'(0) v u = v~ u~``, so the layer-2 subset sums target
      ``w`` over products of two draws of the law, exactly the instances a ReLU target gets (with one law
      for both layers, ``w / phi'(0)`` over products ``lambda_1^2 v~ u~`` is out of reach for small
      ``lambda_1``: the accuracy loss of tanh, sigmoid and GELU tickets with a single law);
    * ``lambda_1 = eps phi'(0) / (c b^3 R^2)`` (``b`` = ``law_bound``, ``|x| <= R`` = ``radius``): the
      remainder of one kept neuron, ``|v| c u^2 x^2 <= c lambda_1 b^3 R^2 / phi'(0)``, is then at most ``eps``,
      the tolerance of one subset-sum instance, so the linearisation costs the certified bound no more than
      the subset sums do. Capped at 1 (the law itself is already small enough) and at
      ``remainder_radius / (b R)`` (where the registry's bound holds).

    Returns ``(1.0, 1.0)`` for an exact first layer (``c = 0``, the identity); the positively homogeneous
    split activations (ReLU, LeakyReLU) need no scale and are not passed here.

    Raises
    ------
    InputError
        When ``act`` has no linear regime (``phi'(0)`` undefined or 0, or no remainder bound).
    """
    if act.dphi0 in (None, 0.0) or act.remainder is None:
        raise InputError(f"lplus1: activation {act.name!r} has no linear regime at 0 (phi'(0) and a remainder "
                         f"bound are needed) for a first-layer scale")
    c, slope = float(act.remainder), abs(float(act.dphi0))
    if c == 0.0:
        return 1.0, 1.0
    lam1 = min(1.0, eps * slope / (c * law_bound ** 3 * radius ** 2), act.remainder_radius / (law_bound * radius))
    return lam1, 1.0 / (lam1 * slope)


#: Standard deviations of a copy's constant offset the constant block's reserve is sized to cancel.
OFFSET_SIGMAS = 4.0


#: Mean subset size assumed when sizing the reserve (the sparsest first-layer instances keep 2 to 4).
OFFSET_SUBSET_SIZE = 3.0


def constant_groups(act: Activation, mode: str, nnz_max: int, const_rho: int) -> int:
    """Groups of ``const_rho`` neurons in the copying layer's constant block: 1, or more when ``phi(0) != 0``.

    In the linear regime a copy of target neuron i keeps ``K ~ nnz_i s`` copying neurons (``nnz_i`` nonzero
    target weights, ``s`` neurons per subset) whose weights ``v`` add the constant ``phi(0) sum v`` to its
    pre-activation; the bias instance must cancel it with constant neurons ``v_c phi(u_c) ~ v_c phi(0)``. Both
    scale with the layer's weights, so the ratio is independent of the per-tensor scales: the offset has
    standard deviation ``phi(0) b' sqrt(K / 3)`` for v ~ U[-b', b'], while one group of ``const_rho``
    candidates moves a sum by at most about ``const_rho phi(0) b' / 4`` in one direction. A single group
    (at most :data:`MAX_CANDIDATES` candidates, the solvers' limit) therefore cannot reach the offsets of
    a wide layer. The reserve groups cancel the offset greedily and the first group's subset sum hits the
    remainder within eps; their number covers :data:`OFFSET_SIGMAS` standard deviations with
    ``s =`` :data:`OFFSET_SUBSET_SIZE`: ``1 + ceil(4 z sqrt(nnz_max s / 3) / const_rho)``.
    """
    if mode != "linear" or act.phi0 == 0:
        return 1
    reach = const_rho / 4.0
    return 1 + math.ceil(OFFSET_SIGMAS * math.sqrt(max(nnz_max, 1) * OFFSET_SUBSET_SIZE / 3.0) / reach)


# ----- instances and their solution ----------------------------------------------------------------------------
@dataclass
class InstanceStats:
    """Per-layer tallies over the chunks (mutable accumulator, private)."""

    instances: int = 0
    above: int = 0
    max_error: float = 0.0
    sum_error: float = 0.0
    sum_size: int = 0
    max_size: int = 0
    status: dict | None = None
    seconds: float = 0.0

    def add(self, errors: np.ndarray, sizes: np.ndarray, status: np.ndarray, eps: float, seconds: float) -> None:
        self.instances += int(errors.size)
        if errors.size:
            self.above += int((errors > eps).sum())
            self.max_error = max(self.max_error, float(errors.max()))
            self.sum_error += float(errors.sum())
            self.sum_size += int(sizes.sum())
            self.max_size = max(self.max_size, int(sizes.max()))
        self.status = self.status or {}
        vals, cnt = np.unique(np.asarray(status, dtype=np.int8), return_counts=True)
        for v, c in zip(vals, cnt):
            key = Status(int(v)).name.lower()
            self.status[key] = self.status.get(key, 0) + int(c)
        self.seconds += seconds

    def record(self) -> dict[str, Any]:
        n = max(self.instances, 1)
        return {"instances": self.instances, "above_eps": self.above, "max_error": self.max_error,
                "mean_error": self.sum_error / n, "mean_subset_size": self.sum_size / n,
                "max_subset_size": self.max_size, "status": self.status or {}, "seconds": round(self.seconds, 3)}


def solve_instances(targets: np.ndarray, cand: np.ndarray, valid: np.ndarray, stats: InstanceStats, *, solver: str,
           objective: str, eps: float, time_limit: float | None) -> np.ndarray:
    """Selections ``(K, c)`` of one batch of instances (padded candidates, ``valid`` marks the real ones)."""
    if targets.size == 0:
        return np.zeros(cand.shape, dtype=bool)
    cand = np.where(valid, cand, 0.0)  # padding is 0: never needed, so no objective selects it
    t0 = time.perf_counter()
    res = solve(SubsetSumProblem(targets, np.ascontiguousarray(cand)), method=solver, objective=objective, eps=eps,
                time_limit=time_limit)
    sel = res.selection & valid
    err = approximation_errors(targets, selection_sums(cand, sel))
    stats.add(err, sel.sum(axis=1), res.status, eps, time.perf_counter() - t0)
    return sel


def greedy_cancel(targets: np.ndarray, reserve: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Reserve candidates ``(K, m)`` that bring each target within comfortable reach of its subset-sum ``group``.

    A row whose ``|target|`` exceeds half its group's one-sided reach (the smaller of the sums of its
    positive and of its negative candidates) keeps its reserve candidates of the target's sign, largest
    first, while their running sum stays at most ``|target|``: the rest lies between 0 and the next
    candidate. Rows already within reach keep nothing (deterministic, no solver).
    """
    r = np.asarray(targets, dtype=np.float64)
    reach = np.minimum(np.where(group > 0, group, 0.0).sum(axis=1), -np.where(group < 0, group, 0.0).sum(axis=1))
    need = np.abs(r) > reach / 2
    same = reserve * np.sign(r)[:, None]
    same = np.where(same > 0, same, 0.0)
    order = np.argsort(-same, axis=1, kind="stable")
    ordered = np.take_along_axis(same, order, axis=1)
    take = (np.cumsum(ordered, axis=1) <= np.abs(r)[:, None]) & (ordered > 0) & need[:, None]
    sel = np.zeros(reserve.shape, dtype=bool)
    np.put_along_axis(sel, order, take, axis=1)
    return sel


def rows_to_targets(k: int, layout: Layout, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows ``q`` of random layer ``k + 1``: target neuron index (-1 for constant rows) and a copy flag."""
    copies = layout.copies(k)
    is_copy = q < copies
    i = np.where(is_copy, q // layout.multiplicity(k), -1)
    return i, is_copy


@dataclass(frozen=True, eq=False)
class FirstView:
    """The copying layer as the next layer sees it."""

    u: np.ndarray          # (n0, first_rho) float64, weight of block neuron (j, r) from input j
    keep: np.ndarray       # (n0, first_rho) bool, that weight kept
    kappa: np.ndarray      # (first_rho * n0 + const_total,) float64: a constant neuron's output; 0 if it reads x


def first_view(layout: Layout, act: Activation, w1: np.ndarray, mask1: np.ndarray) -> FirstView:
    """Read the copying layer's weights and masks: block weights, which are kept, constant outputs."""
    n0, fr = layout.widths[0], layout.first_rho
    rows = np.arange(n0 * fr)
    u = w1[rows, rows // fr].astype(np.float64).reshape(n0, fr)
    keep = mask1[rows, rows // fr].reshape(n0, fr)
    uc = w1[n0 * fr:, n0].astype(np.float64)
    keepc = mask1[n0 * fr:, n0]
    kappa = np.full(layout.rows(0), act.phi0)  # a neuron whose input weight is pruned outputs phi(0)
    kappa[n0 * fr:] = np.where(keepc, phi64(act, uc), act.phi0)
    kappa[:n0 * fr][keep.reshape(-1)] = 0.0
    return FirstView(u=u, keep=keep, kappa=kappa)


def reference_constants(kappa: np.ndarray, uc: np.ndarray, act: Activation, mode: str, reference: bool
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The copying layer's outputs as layer 2's bias instances assume them, and as the network computes them.

    Ours: both are ``kappa`` (:class:`FirstView`). The reference code's first layer (``reference``, linear regime
    only) evaluates the copying layer as the identity: a constant neuron with weight ``u_c`` is assumed to
    output ``u_c`` (the network computes ``phi(u_c)``), and for ``phi(0) != 0`` (sigmoid) the constant neurons
    have no input and are assumed to output 1 (its ``SiG``) while the network computes ``phi(0)``.
    ``uc`` ``(const_total,)``: the constant block's weights; the constant block is the tail of ``kappa``.
    """
    if not reference or mode != "linear":
        return kappa, kappa
    assumed, true = kappa.copy(), kappa.copy()
    c = len(uc)
    if act.phi0 == 0:
        assumed[-c:] = np.asarray(uc, dtype=np.float64)
    else:
        assumed[-c:] = 1.0
        true[-c:] = act.phi0
    return assumed, true


def first_side_order(u: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of one side per block: neuron indices ``(n0, c)``, validity ``(n0, c)``, weights ``(n0, c)``.

    ``side`` ``"+"`` (u > 0), ``"-"`` (u < 0) or ``"all"``; neurons of the side first, in index order.
    """
    if side == "all":
        idx = np.broadcast_to(np.arange(u.shape[1]), u.shape).copy()
        return idx, np.ones(u.shape, dtype=bool), u
    sel = u > 0 if side == "+" else u < 0
    order = np.argsort(~sel, axis=1, kind="stable")
    c = max(int(sel.sum(axis=1).max()), 1)
    idx = order[:, :c]
    valid = np.take_along_axis(sel, idx, axis=1)
    return idx, valid, np.take_along_axis(u, idx, axis=1)


def first_selection(v3: np.ndarray, w_rows: np.ndarray, u: np.ndarray, act: Activation, mode: str, nonneg: bool,
                    stats: InstanceStats, opts: dict, *, reference: bool = False) -> np.ndarray:
    """Solve the weight instances of random layer 2 over the copying layer: which copying neurons each row keeps.

    Parameters
    ----------
    v3 : float32 array, shape (R, J, first_rho)
        Random layer 2's weights from the ``first_rho`` copying neurons of each of ``J`` target inputs (a fully
        connected target: ``J = n_0``; a convolution: ``J = c_in k^2``, one per input channel and kernel tap).
    w_rows : float64 array, shape (R, J)
        The target weight each row must realise per input (0: no instance, the weights stay pruned).
    u : float64 array, shape (J, first_rho)
        The copying neurons' weights per input.
    act, mode, nonneg
        The copying layer's activation and :func:`first_layer_mode`; inputs known to be >= 0.
    reference : bool
        The reference code's first-layer choices (Burkholz's LT-existence code, see ``docs/constructions.md``):
        both sides of the +- split always, each targeting ``+-w`` with no ``1 / (phi(1) - phi(-1))`` rescale;
        the linear regime with candidates ``v u`` against ``w`` (the copying layer assumed to be the identity,
        no ``phi'(0)``).

    Returns
    -------
    bool array, shape (R, J, first_rho)
    """
    R, J, fr = v3.shape
    out = np.zeros((R, J, fr), dtype=bool)
    if mode == "split":
        one, minus = float(phi64(act, np.array(1.0))), float(phi64(act, np.array(-1.0)))
        if reference:
            sides = [("+", 1.0), ("-", -1.0)]
        else:
            sides = [("+", 1.0 / one)] if nonneg else [("+", 1.0 / (one - minus)), ("-", -1.0 / (one - minus))]
    else:
        sides = [("all", 1.0)]
    inst = w_rows != 0  # a pruned target weight keeps its random weights pruned
    rows, js = np.nonzero(inst)
    for side, scale in sides:
        idx, valid, uu = first_side_order(u, side)
        # linear regime: candidates phi'(0) v u against w, so that eps bounds the pre-activation error per
        # weight as for ReLU (w / phi'(0) against v u would ask sigmoid for eps / 4)
        factor = np.abs(uu) if mode == "split" else (uu if reference else act.dphi0 * uu)
        cand = np.take_along_axis(v3, np.broadcast_to(idx[None], (R,) + idx.shape), axis=2)[rows, js]
        cand = cand.astype(np.float64) * factor[js]
        sel = solve_instances(w_rows[rows, js] * scale, cand, valid[js], stats, **opts)
        kk, tt = np.nonzero(sel)
        out[rows[kk], js[kk], idx[js[kk], tt]] = True
    return out


def copy_selection(v3: np.ndarray, w_rows: np.ndarray, stats: InstanceStats, opts: dict) -> np.ndarray:
    """Solve the weight instances of a random layer ``>= 3`` over the previous layer's copies.

    ``v3`` ``(R, J, rho)``: the weights from the ``rho`` copies of each of ``J`` target inputs; ``w_rows``
    ``(R, J)`` the targets (0: no instance). Returns the selection, bool ``(R, J, rho)``.
    """
    rows, js = np.nonzero(w_rows != 0)
    cand = v3[rows, js].astype(np.float64)
    sel = solve_instances(w_rows[rows, js], cand, np.ones(cand.shape, dtype=bool), stats, **opts)
    out = np.zeros(v3.shape, dtype=bool)
    kk, tt = np.nonzero(sel)
    out[rows[kk], js[kk], tt] = True
    return out


def bias_selection(targets: np.ndarray, cand: np.ndarray, copy_rows: np.ndarray, const_rows: np.ndarray, rss: int,
                   bstats: InstanceStats, cstats: InstanceStats, opts: dict, *, reserve: bool
                   ) -> tuple[np.ndarray, int]:
    """Solve the instances over the previous layer's constant neurons: biases and new constant neurons.

    Parameters
    ----------
    targets : float64 array, shape (R,)
        Per row: the copy's bias minus its constant offset, or :data:`CONSTANT_TARGET` for a constant neuron.
    cand : float64 array, shape (R, c)
        ``v * kappa`` per constant neuron; the first ``rss`` columns are the subset-sum group, the rest the
        reserve (copying layer with ``phi(0) != 0``, :func:`constant_groups`).
    copy_rows, const_rows : bool arrays, shape (R,)
        Rows that are copies (an instance when their target is not 0) and constant neurons (always one).
    reserve : bool
        Cancel the copies' large offsets greedily with the reserve columns first (:func:`greedy_cancel`).

    Returns
    -------
    (bool array (R, c), int)
        The selection and the number of rows that used the reserve.
    """
    out = np.zeros(cand.shape, dtype=bool)
    bt = np.array(targets, dtype=np.float64)
    used = 0
    if reserve:
        # the reserve cancels phi(0) sum v greedily, the subset-sum group then meets the rest within eps
        rows_c = np.nonzero(copy_rows)[0]
        sel = greedy_cancel(bt[rows_c], cand[rows_c, rss:], cand[rows_c, :rss])
        rr, cc = np.nonzero(sel)
        out[rows_c[rr], rss + cc] = True
        bt[rows_c] -= np.where(sel, cand[rows_c, rss:], 0.0).sum(axis=1)
        used = int(sel.any(axis=1).sum())
    # constant neurons need no precision (their exact values feed the next biases): tallied apart
    for group, st in ((copy_rows & (bt != 0), bstats), (const_rows, cstats)):
        c = cand[group][:, :rss]
        sel = solve_instances(bt[group], c, np.ones(c.shape, dtype=bool), st, **opts)
        rr, cc = np.nonzero(sel)
        out[np.nonzero(group)[0][rr], cc] = True
    return out, used


# ----- certified bound -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LPlus1Bound:
    """Certified ``sup_{|x|_inf <= radius} |f(x) - g(x)|_inf`` and its ingredients per random layer.

    Attributes
    ----------
    bound : float
        Upper bound on the largest output error (exact arithmetic).
    radius : float
    layers : tuple of dict
        Per random layer ``>= 2``: ``max_pre_error`` (largest copy pre-activation error bound),
        ``max_error`` (after the activation), ``remainder`` (largest Taylor remainder term, copying layer),
        ``amplification`` (largest ``sum |v|`` over a copy's kept weights from copies: the factor the previous
        layer's error is multiplied by), ``activation_bound`` (largest target activation bound ``B``).
    """

    bound: float
    radius: float
    layers: tuple[dict, ...]


def layout_of(ticket: Ticket) -> tuple[Layout, str]:
    """The layout and first-layer mode an L+1 ticket records; an :class:`InputError` for another ticket."""
    info = ticket.provenance.get("lplus1")
    if ticket.provenance.get("method") != METHOD or not isinstance(info, dict):
        raise InputError(f"not an {METHOD} ticket (method {ticket.provenance.get('method')!r})")
    return (Layout(tuple(info["widths"]), int(info["rho"]), int(info["first_rho"]), int(info["const_rho"]),
                   int(info.get("const_groups", 1))),  # tickets from before constant groups: one group
            str(info["first_layer_mode"]))


def first_block_terms(blk: np.ndarray, u: np.ndarray, keep: np.ndarray, act: Activation, mode: str, nonneg: bool,
                      radius: float, w_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random layer 2's error terms over the copying layer, per row.

    Parameters
    ----------
    blk : float64 array, shape (R, J, first_rho)
        Kept (masked) layer-2 weights from the copying neurons of each of ``J`` target inputs.
    u, keep : arrays, shape (J, first_rho)
        The copying neurons' weights and whether the copying layer keeps them.
    w_rows : float64 array, shape (R, J)
        Target weights.

    Returns
    -------
    coef : (R,)
        ``sum_J |realised coefficient - w| R`` (split: the worse of the two signs of x unless ``nonneg``).
    rem : (R,)
        Linear regime: ``c sum |v| u^2 R^2`` (the Taylor remainder); split: 0.
    kept : (R, J, first_rho)
        ``blk`` where the copying neuron is kept, else 0.
    """
    R = blk.shape[0]
    kept = np.where(keep[None], blk, 0.0)
    if mode == "split":
        one, minus = float(phi64(act, np.array(1.0))), float(phi64(act, np.array(-1.0)))
        a_pos = (kept * np.where(u > 0, np.abs(u), 0.0)[None]).sum(axis=2)
        a_neg = (kept * np.where(u < 0, np.abs(u), 0.0)[None]).sum(axis=2)
        err = np.abs(a_pos * one + a_neg * minus - w_rows)  # x >= 0: phi(x) = x phi(1), phi(-x) = x phi(-1)
        if not nonneg:
            err = np.maximum(err, np.abs(a_pos * minus + a_neg * one + w_rows))
        return err.sum(axis=1) * radius, np.zeros(R), kept
    a = (kept * u[None]).sum(axis=2)
    coef = np.abs(act.dphi0 * a - w_rows).sum(axis=1) * radius
    rem = act.remainder * (np.abs(kept) * u[None] ** 2).sum(axis=(1, 2)) * radius ** 2
    return coef, rem, kept


def finish_ticket(spec: Any, dist: Any, seed: int, masks: dict[str, torch.Tensor], records: list[dict[str, Any]],
                  info: dict[str, Any], traced: Any, *, widths: Any, num_params: int, eps: float, delta: float,
                  rho: int, theory: int, objective: str, solver: str, nonneg_input: bool, record_target: bool,
                  certify: Any, radius: float, gen_seconds: float, start: float, strict: bool, say: Any) -> Ticket:
    """The last step of both L+1 cases: the warnings for instances above eps, the provenance (``info`` is the
    case's ``lplus1`` record), the ticket, its certified bound (``certify(ticket) -> LPlus1Bound``) and timings;
    :class:`InfeasibleError` with ``strict`` when an instance missed eps."""
    solve_seconds = sum(r[g]["seconds"] for r in records for g in ("weights", "biases", "constants"))
    above = sum(r["weights"]["above_eps"] + r["biases"]["above_eps"] for r in records)
    warnings = []
    if above:
        warnings.append(f"{above} subset-sum instances miss eps = {eps:g} with rho = {rho} (max error "
                        f"{max(r['weights']['max_error'] for r in records):.3g}); the certified bound includes them; "
                        f"a larger rho (the theorem asks {theory} for delta = {delta:g}) lowers the count")
        say("warning: " + warnings[-1])
    provenance: dict[str, Any] = {
        "method": METHOD, "paper": PAPER, "eps": eps, "delta": delta, "objective": objective, "solver": solver,
        "lplus1": info,
        "nonneg_input": nonneg_input, "warnings": warnings, "layers": records, "instances_above_eps": above,
        "random_params": int(spec.num_params),
        "target": {"spec": traced.spec.to_dict(), "fingerprint": fingerprint(traced.state),
                   "widths": list(widths), "num_params": num_params, "source_names": traced.source_names},
        "strongticket": __version__,
    }
    arrays = {f"target.{n}": t.detach().cpu() for n, t in traced.state.items()} if record_target else {}
    ticket = Ticket(spec, dist, seed, masks, provenance, arrays)
    tb = time.perf_counter()
    bound = certify(ticket)
    provenance["certified_bound"] = {"bound": bound.bound, "radius": radius, "norm": "linf",
                                     "layers": list(bound.layers)}
    provenance["seconds"] = {"generate": round(gen_seconds, 3), "solve": round(solve_seconds, 3),
                             "bound": round(time.perf_counter() - tb, 3),
                             "total": round(time.perf_counter() - start, 3)}
    ticket = Ticket(spec, dist, seed, masks, provenance, arrays)
    if strict and above:
        raise InfeasibleError(f"{warnings[0]}; or pass strict=False to keep the ticket anyway")
    return ticket


#: Elements of a random layer generated (and turned into instances) at once, in both cases.
CHUNK_ELEMENTS = 1 << 22


def first_layer_distribution(base: Any, act0: Activation, mode: str, first_scale: float | str | None, eps: float,
                             radius: float, names: Any) -> tuple[Any, float, float, str, float]:
    """The weight law of the random network with the first pair's per-tensor scales, in both cases.

    In the linear regime (``mode == "linear"``) with ``first_scale`` given, the copying layer is scaled by
    ``lambda1`` (:func:`first_layer_scales` for ``"theory"``, else the number given) and the next layer by
    ``lambda2 = 1 / (lambda1 |phi'(0)|)``; otherwise the base law's own scales. Returns ``(distribution,
    lambda1, lambda2, rule, law_bound)``, ``rule`` one of ``theory``, ``given``, ``none``, ``split``.
    """
    law_bound = base.bound if base.bound is not None else 1.0  # unbounded laws: their unit scale
    if mode == "linear" and first_scale is not None:
        lam1, lam2 = first_layer_scales(act0, eps, radius, law_bound)
        if first_scale != "theory":
            lam1, lam2 = float(first_scale), 1.0 / (float(first_scale) * abs(act0.dphi0))
        return (base.with_tensor_scales({names[0]: lam1, names[1]: lam2}), lam1, lam2,
                "theory" if first_scale == "theory" else "given", law_bound)
    return (base, base.tensor_scale(names[0]), base.tensor_scale(names[1]), "none" if mode == "linear" else "split",
            law_bound)



__all__ = ["CHUNK_ELEMENTS", "finish_ticket", "first_layer_distribution", "CONSTANT_TARGET", "FirstView", "InstanceStats", "LPLUS1_C", "LPlus1Bound", "Layout", "METHOD", "OFFSET_SIGMAS", "OFFSET_SUBSET_SIZE", "PAPER", "bias_selection", "constant_groups", "copy_selection", "first_block_terms", "first_layer_mode", "first_layer_scales", "first_selection", "first_side_order", "first_view", "greedy_cancel", "layout_of", "phi64", "reference_constants", "rows_to_targets", "solve_instances"]
