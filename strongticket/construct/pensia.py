"""Pensia et al. (2020): a depth-2L random ReLU network pruned into any depth-L fully connected ReLU target.

A. Pensia, S. Rajput, A. Nagle, H. Vishwakarma, D. Papailiopoulos, "Optimal Lottery Tickets via SubsetSum:
Logarithmic Over-Parameterization is Sufficient", NeurIPS 2020 (arXiv 2006.07990).

Theorem 1 (upper bound; stated with the code's reading in ``docs/constructions.md``). Let F be the targets
``f(x) = W_L relu(W_{L-1} ... relu(W_1 x))`` with ``W_i`` of shape ``d_i x d_{i-1}`` and spectral norm
at most 1. Let ``g(x) = M_{2L} relu(M_{2L-1} ... relu(M_1 x))`` with ``M_{2i-1}`` of shape
``C d_{i-1} log(d_{i-1} d_i L / min(eps, delta)) x d_{i-1}`` and ``M_{2i}`` of shape
``d_i x C d_{i-1} log(...)``, all entries i.i.d. U[-1, 1]. Then with probability at least ``1 - delta``,
for every f in F at once, there are masks such that ``sup_{|x| <= 1} |f(x) - g_masked(x)| < eps``:
the random network need only be a logarithmic factor wider (and twice as deep) than the target.

How (stage by stage in :mod:`strongticket.construct.blocks`, driven by the one 2L engine
:mod:`strongticket.construct.engine`): target layer ``W_i`` lives in random layers ``2i-1`` and ``2i``; hidden
neurons are made univariate, and each target weight becomes two random subset-sum instances over products
``v*u`` of the two layers (the +- split), all instances of a layer solved in batches by
:func:`strongticket.subsetsum.solve` (:func:`subset_sum_chooser`). The per-weight budget ``eps'`` follows from the network
``eps`` by propagating the per-layer errors through the network (``docs/constructions.md``, "Per-weight
eps' from network eps"; ``strongticket.subsetsum.theory.pensia_per_weight_eps``) unless given.

Differences from the paper, recorded so a reader can check them:

* Weight laws other than U[-1, 1] are allowed (their experiment draws U[min w, max w] of the target).
* Sample count: every instance gets exactly ``n`` candidates (``n``, the samples per weight, 21 in their
  experiment): the first ``n`` neurons of its sign in its input's block of ``H`` hidden neurons. The random
  signs cannot be chosen, so ``H`` (the block size) exceeds ``2n``: by default the smallest ``H`` for which
  every block has ``n`` neurons of each needed sign except with probability ``delta``
  (:func:`strongticket.construct.blocks.block_size_for`). The ticket records ``n``, ``H`` and that bound.
* Wider pool: an instance whose first ``n`` candidates miss ``eps'`` is solved again over every neuron of its
  sign in the block (``wider_pool=True``, the default), so that a weight is missed only where the random
  network cannot reach it; the provenance lists the retried instances (``layers[i]["wider_pool"]``) and, per
  remaining miss, its reason: outside the range of sums the block's products can reach, or not found
  (``layers[i]["misses"]``, totals in ``miss_reasons``).
* Biases, absent from the theorem, are realised by a constant input channel (see ``blocks``).
* Objective ``sparsest`` keeps, per weight, the fewest random weights within ``eps'`` (not in the paper,
  whose experiment minimised the error with a MIP).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from strongticket import __version__
from strongticket.construct import engine
from strongticket.construct.blocks import (
    Chooser,
    FCTarget,
    block_parameter_names,
    block_size_for,
    random_spec,
    read_fc_target,
    shortfall_probability,
    subset_sum_reach,
)
from strongticket.errors import InputError, MethodUnavailableError
from strongticket.nets.distributions import WeightDistribution, check_seed
from strongticket.nets.trace import TracedNet
from strongticket.subsetsum import Status, SubsetSumProblem, solve
from strongticket.subsetsum.exact import EXACT_MAX_N
from strongticket.ticket import Ticket, fingerprint
from strongticket.validation import check_unit_open

METHOD = "pensia2020"


#: The theorem's unknown constant C in ``n = ceil(C log2(d_in d_out L / min(eps', delta)))``, calibrated on our
#: measurements, not taken from the literature (which gives none). ``experiments/width_scaling.py`` (delta 0.01,
#: U[-1, 1]) found the smallest n with every weight of every seed within eps': 20-23 on a random 16-16-4 target
#: with weights U[-0.5, 0.5] (3 seeds, eps' 0.1 to 0.01; log factor 15.6, ratios 1.28-1.47), 20-25 on
#: LeNet-300-100 (3 seeds, eps' 0.1, 0.01; log factor 26.1, ratios 0.77-0.96); FC2 at n = 21 met eps' = 0.01
#: for 2 of 3 seeds (ratio 0.80). C = 1.5 covers the largest ratio. Re-measure when the construction or the
#: solver changes.
PENSIA_C = 1.5


def theory_per_weight_eps(target: FCTarget, eps: float) -> float:
    """``eps'`` for network error ``eps``: ``eps / (2 L sqrt(d_in d_out))`` at the widest layer (the propagation
    in ``docs/constructions.md``)."""
    from strongticket.subsetsum import theory

    return min(theory.pensia_per_weight_eps(eps, target.num_layers, *reversed(w.shape)) for w in target.weights)


def theory_samples(target: FCTarget, per_weight_eps: float, delta: float, C: float | None = None) -> int:
    """The theorem's samples per weight ``n`` for ``target`` at per-weight error ``eps'`` and ``delta``.

    Pensia et al. 2020, Theorem 1 (its form, ``docs/constructions.md``) through
    :func:`strongticket.subsetsum.theory.pensia_width` evaluated at ``eps'`` (the RSS lemma at ``eps'`` and a
    union bound over the ``d_in d_out L`` weights): ``n = ceil(C log2(d_in d_out L / min(eps', delta)))``, the
    largest over the layers. ``C`` defaults to :data:`PENSIA_C` (calibrated here, unknown in the literature).
    """
    from strongticket.subsetsum import theory

    C = PENSIA_C if C is None else C
    return max(theory.pensia_width(w.shape[1], w.shape[0], target.num_layers, per_weight_eps, delta,
                                   C=C).samples_per_weight for w in target.weights)


#: Largest pool the wider-pool retry solves exactly as a whole (the exact solver's own limit).
WIDE_EXACT_LIMIT = EXACT_MAX_N

#: Pools above this many candidates are solved by the exact solver on one thread. Its working memory per
#: thread is :func:`strongticket.subsetsum.exact.one_target_bytes` above 36 candidates (about 7 * 2^(n/2)
#: bytes: 28 MB at n = 40, 112 MB at n = 44), independent of the batch, so every thread added to a wide pool
#: adds that much to the construction's peak (the results do not depend on the threads: the solver is
#: parallel over instances).
WIDE_ONE_THREAD = 40


def subset_sum_chooser(solver: str, objective: str, eps: float, time_limit: float | None) -> Chooser:
    """The Pensia chooser: per instance, a subset of the candidate products by :func:`strongticket.subsetsum.solve`.

    First pass: ``solver`` over the instance's ``n`` candidates. Wider pool (instances that missed ``eps``):
    every neuron of the instance's sign in its block. While that pool has at most :data:`WIDE_EXACT_LIMIT`
    candidates (the exact solver's limit, 44), ``solver`` (``auto`` picks the exact meet-in-the-middle solver)
    solves it whole. Beyond, the exact solver's memory (2^(n/2) sums per half) rules it out, so it is explicit:
    ``exact`` over the pool's first :data:`WIDE_EXACT_LIMIT` neurons (in block order; they contain the first
    ``n``), then ``local_search`` over the whole pool for the instances still above ``eps``, keeping per
    instance the better of the two. The
    statuses then prove nothing about the whole pool (``feasible`` within ``eps``, ``unknown`` otherwise).
    Exact solves of pools above :data:`WIDE_ONE_THREAD` candidates run on one thread (bounded memory).
    """

    def choose(targets: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        res = solve(SubsetSumProblem(targets, cand), method=solver, objective=objective, eps=eps,
                    time_limit=time_limit)
        return res.selection, res.status, {"method": res.method, "seconds": round(res.seconds, 4)}

    def choose_wide(targets: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        c, limit = cand.shape[1], WIDE_EXACT_LIMIT
        threads = {"num_threads": 1} if c > WIDE_ONE_THREAD else {}
        if c <= limit and solver in ("auto", "exact") and threads:
            # what auto picks for a numpy pool of <= 44 (exact), named so that it takes the thread count
            res = solve(SubsetSumProblem(targets, cand), method="exact", objective=objective, eps=eps,
                        time_limit=time_limit, **threads)
            return res.selection, res.status, {"method": res.method, "seconds": round(res.seconds, 4)}
        if c <= limit or solver not in ("auto", "exact"):
            try:
                return choose(targets, cand)
            except MethodUnavailableError:  # e.g. brute or torch cannot take the pool: the split below can
                pass
        head = solve(SubsetSumProblem(targets, np.ascontiguousarray(cand[:, :limit])), method="exact",
                     objective=objective, eps=eps, time_limit=time_limit, **threads)
        sel = np.zeros(cand.shape, dtype=bool)
        sel[:, :limit] = head.selection
        errors = head.errors.copy()
        status = np.where(errors <= eps, np.int8(Status.FEASIBLE), np.int8(Status.UNKNOWN))
        info = {"method": f"exact on the first {limit} of {c}, then local_search on all {c}",
                "seconds": round(head.seconds, 4), "local_search_instances": 0}
        miss = np.nonzero(errors > eps)[0]
        if miss.size:
            tail = solve(SubsetSumProblem(targets[miss], np.ascontiguousarray(cand[miss])), method="local_search",
                         objective=objective, eps=eps, time_limit=time_limit)
            take = tail.errors < errors[miss]
            sel[miss[take]] = tail.selection[take]
            status[miss[take]] = tail.status[take]
            info["local_search_instances"] = int(miss.size)
            info["seconds"] = round(head.seconds + tail.seconds, 4)
        return sel, status, info

    return Chooser("subset_sum", choose, subset_sum_reach, choose_wide)


def miss_message(above: int, reasons: dict[str, int], misses: list[dict], *, samples: int, block_size: int,
                 per_weight_eps: float, max_error: float, theory_n: int | None, wider_pool: bool,
                 law_bound: float | None = None) -> str:
    """One line: how many weights miss ``eps'``, why (by reason) and what would help, without contradiction.

    ``reasons`` counts the missed instances by :func:`strongticket.construct.blocks.classify_miss` reason;
    ``misses`` lists some of them (for the law scale an out-of-range weight needs); ``law_bound`` is the
    largest |w| of the weight law (None for unbounded laws).
    """
    parts = [f"{above} target weights miss per-weight eps {per_weight_eps:g} with n = {samples} samples per "
             f"weight (block size {block_size} per input; max error {max_error:.3g})"]
    out = reasons.get("outside_range", 0)
    if out:
        scales = [m["law_scale"] for m in misses if m["reason"] == "outside_range"]
        fix = "only more neurons per block (CLI: --block-size) or a wider weight law can"
        if scales and None not in scales:
            wider = f" (|w| up to {max(scales) * law_bound:.3g})" if law_bound else ""
            fix = (f"a weight law scaled by >= {max(scales):.3g}{wider} would reach them, as would more neurons "
                   f"per block (CLI: --block-size)")
        elif scales:
            fix = "some have no product of the needed sign at all: only more neurons per block (CLI: --block-size) can"
        searched = "every neuron of their sign in the block was a candidate" if wider_pool else \
            "their candidates cannot reach them"
        parts.append(f"{out} of their instances lie outside the range of sums the random products can reach "
                     f"({searched}), so more samples per weight from these blocks cannot help; {fix}")
    found = reasons.get("not_found", 0)
    if found:
        where = "every neuron of their sign in the block" if wider_pool else f"their first {samples} candidates"
        if theory_n is not None and samples < theory_n:
            fix = f"the theorem asks for n = {theory_n} samples per weight (CLI: --samples {theory_n})"
        else:
            fix = f"raise samples above {samples} (CLI: --samples) or the block size (CLI: --block-size)"
        parts.append(f"{found} of their instances lie within reach but no subset within eps was found over "
                     f"{where}: {fix}")
    return "; ".join(parts)


def construct(
    target: nn.Module | TracedNet,
    *,
    eps: float | None = None,
    per_weight_eps: float | None = None,
    delta: float = 0.01,
    samples: int | None = None,
    block_size: int | None = None,
    seed: int = 0,
    distribution: WeightDistribution | None = None,
    solver: str = "auto",
    objective: str = "min_error",
    time_limit: float | None = None,
    strict: bool = True,
    wider_pool: bool = True,
    input_shape: tuple[int, ...] | None = None,
    nonneg_input: bool = False,
    record_target: bool = True,
    log: Callable[[str], None] | None = None,
    _chooser: Chooser | None = None,
    _method: str = METHOD,
) -> Ticket:
    """Prune a depth-2L random network into an approximation of the fully connected ReLU ``target``.

    Parameters
    ----------
    target : nn.Module or TracedNet
        Linear layers with ReLU (hidden) or identity activations, optionally after a ``Flatten``.
    eps : float in (0, 1), optional
        Network error: ``sup_{|x|<=1} |f(x) - g(x)|`` in the theorem's setting. Gives ``per_weight_eps`` by
        :func:`theory_per_weight_eps` and, with ``delta``, the theorem's sample count.
    per_weight_eps : float in (0, 1), optional
        Error allowed per target weight (the RSS tolerance); overrides the value derived from ``eps``.
    delta : float in (0, 1)
        Failure probability for the theorem's width, and (separately) for the default ``block_size``.
    samples : int, optional
        ``n``, candidates per subset-sum instance (random products per weight and sign); default: the
        theorem's.
    block_size : int, optional
        ``H``, hidden neurons per input (the random network's width is ``H * d_in`` per block); default: the
        smallest ``H`` that gives every block ``n`` neurons of each needed sign with probability at least
        ``1 - delta`` (:func:`strongticket.construct.blocks.block_size_for`). A block with fewer raises
        :class:`InfeasibleError` (naming the block and the size needed) when ``strict``; otherwise its
        instances use the neurons it has and the provenance lists them under ``warnings``.
    seed : int
        Seed of the random network.
    distribution : WeightDistribution, optional
        Law of the random weights; default U[-1, 1] as in the theorem.
    solver, objective, time_limit
        Passed to :func:`strongticket.subsetsum.solve` (``objective`` ``min_error`` or ``sparsest``).
    strict : bool
        Raise :class:`InfeasibleError` when some weight misses ``per_weight_eps``; when False the ticket is
        returned and the misses are counted in its provenance.
    nonneg_input : bool
        Inputs are known to be >= 0 (images in [0, 1]): the first block then needs no ``relu(-x)`` side, as no
        block after a ReLU does. The ticket then approximates the target only on non-negative inputs
        (recorded in the provenance).
    record_target : bool
        Store the target's weights in the ticket (``arrays["target.*"]``) so that it verifies on its own.

    Returns
    -------
    Ticket
        Random spec of 2L ``Linear`` layers, masks, and provenance with per-layer error summaries; the
        per-weight errors are in ``arrays["errors.block{i}.pos"/".neg"]`` (float64, ``(d_out, d_in)``).
    """
    return prepare(target, eps=eps, per_weight_eps=per_weight_eps, delta=delta, samples=samples,
                   block_size=block_size, seed=seed, distribution=distribution, solver=solver, objective=objective,
                   time_limit=time_limit, strict=strict, wider_pool=wider_pool, input_shape=input_shape,
                   nonneg_input=nonneg_input, record_target=record_target, log=log, _chooser=_chooser,
                   _method=_method).build()


def prepare(
    target: nn.Module | TracedNet,
    *,
    eps: float | None = None,
    per_weight_eps: float | None = None,
    delta: float = 0.01,
    samples: int | None = None,
    block_size: int | None = None,
    seed: int = 0,
    distribution: WeightDistribution | None = None,
    solver: str = "auto",
    objective: str = "min_error",
    time_limit: float | None = None,
    strict: bool = True,
    wider_pool: bool = True,
    input_shape: tuple[int, ...] | None = None,
    nonneg_input: bool = False,
    record_target: bool = True,
    log: Callable[[str], None] | None = None,
    _chooser: Chooser | None = None,
    _method: str = METHOD,
) -> engine.Prepared:
    """Check the arguments, read ``target`` and plan the construction of :func:`construct`, solving nothing.

    Same arguments as :func:`construct`; :meth:`strongticket.construct.engine.Prepared.build` gives its ticket,
    and :mod:`strongticket.construct.shard` runs it in slices.
    """
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    seed = check_seed(seed)
    if eps is None and per_weight_eps is None:
        raise InputError("give eps (network error) or per_weight_eps (error per target weight), both in (0, 1)")
    if eps is not None:
        eps = check_unit_open("eps", eps)
    if per_weight_eps is not None:
        per_weight_eps = check_unit_open("per_weight_eps", per_weight_eps)
    delta = check_unit_open("delta", delta)
    engine.check_common_options(objective, samples, None)
    fc = read_fc_target(target, input_shape, construction=_method)
    dist = distribution or WeightDistribution.uniform(-1.0, 1.0)

    theory_eps = theory_per_weight_eps(fc, eps) if eps is not None else None
    if per_weight_eps is None:
        per_weight_eps = theory_eps
    theory_n = theory_samples(fc, per_weight_eps, delta)
    if samples is None:
        samples = theory_n
    if _chooser is None and samples > 62:
        raise InputError(f"samples per weight must be <= 62 for the subset-sum construction, got {samples}")
    p_pos, p_neg = dist.sign_probabilities()
    negatives = [not (nonneg_input if i == 0 else fc.activations[i - 1] == "relu") for i in range(fc.num_layers)]
    needs = [(w.shape[1], p_pos) for w in fc.weights]
    needs += [(w.shape[1], p_neg) for w, neg in zip(fc.weights, negatives) if neg]
    needed_H, H = engine.choose_block_size(samples, delta, needs, block_size)
    spec = random_spec(fc, H)
    choose = _chooser or subset_sum_chooser(solver, objective, per_weight_eps, time_limit)

    def short_fix() -> str:
        if needed_H > H:
            return f"block_size {needed_H} makes this happen with probability <= delta = {delta:g}"
        return (f"at block_size {H} this happens with probability <= delta = {delta:g}: use another seed or a "
                f"smaller delta (delta/10 gives block_size {block_size_for(samples, delta / 10, needs)})")

    settings = engine.Settings(distribution=dist, seed=seed, block_size=H, samples=samples,
                               per_weight_eps=per_weight_eps, strict=strict, wider_pool=wider_pool,
                               short_fix=short_fix, log=say)

    def finish(out: engine.EngineResult) -> Ticket:
        masks: dict[str, Any] = dict(out.masks)
        arrays: dict[str, Any] = dict(out.arrays)
        layers_info, warnings = out.layers, list(out.warnings)
        gen_seconds, solve_seconds = out.seconds["generate"], out.seconds["solve"]
        total_err = max(li["errors"]["max"] for li in layers_info)
        above = sum(li["errors"]["above_eps"] for li in layers_info)
        reasons, listed = engine.miss_totals(layers_info)
        message = None
        if above:
            message = miss_message(above, reasons, listed, samples=samples, block_size=H,
                                   per_weight_eps=per_weight_eps, max_error=total_err, theory_n=theory_n,
                                   wider_pool=wider_pool, law_bound=dist.bound)
            if not strict:
                warnings.append(message)
                say("warning: " + message)
        provenance = {
            "method": _method,
            "paper": "Pensia, Rajput, Nagle, Vishwakarma, Papailiopoulos, NeurIPS 2020" if _method == METHOD
            else "Malach, Yehudai, Shalev-Shwartz, Shamir, ICML 2020",
            "eps": eps, "per_weight_eps": per_weight_eps, "delta": delta,
            "objective": objective if _chooser is None else choose.name, "solver": solver if _chooser is None else None,
            "chooser": choose.name,
            "samples_per_weight": samples, "hidden_per_input": H, "block_size": H,
            "block_size_rule": {
                "needed": needed_H, "given": block_size, "delta": delta, "p_pos": p_pos, "p_neg": p_neg,
                "union_bound": sum(c * shortfall_probability(H, samples, p) for c, p in needs),
                "rule": "smallest H with sum over (block, needed sign) of P(Binomial(H, p) < n) <= delta",
            },
            "random_width": [int(spec.parameter_shapes()[n1][0]) for n1, _ in block_parameter_names(spec)],
            "warnings": warnings,
            "theory_samples_per_weight": theory_n, "theory_per_weight_eps": theory_eps, "theory_C": PENSIA_C,
            "theory_form": "n = ceil(C log2(d_in d_out L / min(eps', delta))), C calibrated (pensia.PENSIA_C)",
            "constant_input_channel": fc.constant, "nonneg_input": nonneg_input,
            "target": {
                "spec": fc.traced.spec.to_dict(), "fingerprint": fingerprint(fc.traced.state),
                "widths": list(fc.widths), "num_weights": fc.num_weights,
                "source_names": fc.traced.source_names,
            },
            "layers": layers_info,
            "max_error": total_err, "weights_above_eps": above,
            "wider_pool": {
                "enabled": wider_pool,
                "instances": sum(li["wider_pool"]["instances"] for li in layers_info),
                "recovered": sum(li["wider_pool"]["recovered"] for li in layers_info),
                "rule": "an instance above per_weight_eps with its first n candidates is solved again over every "
                        "neuron of its sign in its block; the better choice is kept",
            },
            "miss_reasons": reasons,
            "seconds": {"generate": round(gen_seconds, 3), "solve": round(solve_seconds, 3),
                        "total": round(time.perf_counter() - start, 3)},
            "strongticket": __version__,
        }
        return engine.finish_ticket(spec, dist, seed, masks, provenance, arrays, fc.traced.state,
                                    record_target=record_target, strict=strict, miss_message=message if above else None)

    return engine.Prepared(jobs=tuple(engine.linear_jobs(fc, spec, negatives)), chooser=choose, settings=settings,
                           finish=finish, traced=fc.traced)


def hidden_width(block_size: int, d_in: int) -> int:
    """Hidden neurons of a block: ``block_size * d_in`` (``block_size`` from :func:`blocks.block_size_for`)."""
    return block_size * d_in


__all__ = ["METHOD", "PENSIA_C", "construct", "hidden_width", "prepare", "theory_per_weight_eps",
           "theory_samples"]
