"""The one 2L engine: per target layer, random pair -> instances -> chooser -> masks, whatever the layer kind.

Every depth-2L construction here (Pensia et al. 2020, Malach et al. 2020, and the convolutional one of da
Cunha, Natale, Viennot 2022) realises one target layer by a pair of random layers: a first layer pruned to
univariate neurons (or channels), ``u[j, r]`` for input ``j``, then a second layer whose kept entries
``v`` make, per target weight and sign of ``u``, a subset of products ``v u`` that approximates the weight.
What differs is only

* the **layer kind**, which presents a target layer as a matrix ``(rows, d_in)`` and the random second
  layer as ``(rows, d_in * H)`` (a Linear layer is its own matrix; a kxk convolution has rows
  ``(t, p, q)``; a Linear after a Flatten, realised by a 1x1 convolution before the Flatten, has rows
  ``(o, s)`` for output ``o`` and position ``s``, and channels as inputs), and maps the masks back to the random
  layers' shapes: a :class:`LayerJob` (:func:`linear_job`, :func:`conv_job`, :func:`flatten_linear_job`);
* the **chooser**, which picks the subsets (:class:`strongticket.construct.blocks.Chooser`: subset sum,
  find one, later multidimensional subset sum).

:func:`run` does the rest for any list of jobs and any chooser: reads ``u`` from the random first layer,
checks that every block has ``n`` neurons of each needed sign, draws ``v``, builds and solves the instances
with :func:`strongticket.construct.blocks.assemble_block` (wider-pool retry included), and collects the
masks, per-weight errors and one provenance record per layer. Adding a layer kind means writing its jobs;
adding a chooser means writing a :class:`Chooser`. The construction modules (:mod:`.pensia`, :mod:`.malach`)
keep their paper's parameters, theory and messages; the method is described in ``docs/constructions.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from strongticket.construct.blocks import (
    MAX_LISTED,
    BlockResult,
    Chooser,
    FCTarget,
    assemble_block,
    block_size_for,
    block_parameter_names,
    first_layer_diagonal,
    short_inputs,
    summarize_errors,
)
from strongticket.errors import InfeasibleError, InputError
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import NetSpec
from strongticket.ticket import Ticket
from strongticket.validation import check_int


@dataclass(frozen=True, eq=False)
class LayerJob:
    """One target layer as its layer kind presents it to the engine.

    Attributes
    ----------
    names : (str, str)
        Parameter names of the random pair (first layer, second layer) in the random spec.
    shapes : (tuple of int, tuple of int)
        Their shapes.
    matrix : float64 array, shape (rows, d_in)
        Target weights as a matrix: instance ``(row, j)`` approximates ``matrix[row, j]``.
    negative_side : bool
        Build the ``u < 0`` instances (the layer's input can be negative).
    second_as_matrix : callable
        Random second-layer weights (numpy, its own shape) -> ``(rows, d_in * H)`` float32, entry
        ``[row, j*H + r]`` multiplying hidden neuron ``(j, r)`` in instance ``(row, j)``.
    masks_back : callable
        :class:`BlockResult` -> ``(mask1, mask2)`` bool tensors in the random layers' own shapes.
    fan_in : int
        Fan-in of the second layer, for laws that scale with it.
    errors_back : callable, optional
        Per-weight errors ``(rows, d_in)`` -> the kind's own layout (e.g. kernel shape); None keeps the matrix.
    label : str
        How messages name the layer; empty: ``"block i (target layer i)"``.
    per_weight_eps : float, optional
        This layer's tolerance; None: the one given to :func:`run`.
    chooser : Chooser, optional
        This layer's chooser (e.g. one per tolerance); None: the one given to :func:`run`.
    rowwise : bool
        ``second_as_matrix`` maps each row (first index) of the random second layer to the same number of
        consecutive matrix rows, in order; :func:`run` then fills the matrix chunk by chunk as the rows are
        drawn, never holding the layer twice (the largest array of a big layer).
    """

    names: tuple[str, str]
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    matrix: np.ndarray
    negative_side: bool
    second_as_matrix: Callable[[np.ndarray], np.ndarray]
    masks_back: Callable[[BlockResult], tuple[torch.Tensor, torch.Tensor]]
    fan_in: int
    errors_back: Callable[[np.ndarray], np.ndarray] | None = None
    label: str = ""
    per_weight_eps: float | None = None
    chooser: Chooser | None = None
    rowwise: bool = False


def linear_job(names: tuple[str, str], shapes: tuple[tuple[int, ...], tuple[int, ...]], matrix: np.ndarray, *,
               negative_side: bool, fan_in: int | None = None, label: str = "", per_weight_eps: float | None = None,
               chooser: Chooser | None = None) -> LayerJob:
    """The Linear layer kind: the target matrix ``(d_out, d_in)`` is its own view, the random pair
    ``Linear(d_in, H d_in)`` + ReLU, ``Linear(H d_in, d_out)`` (fan-in of the second: ``H d_in`` by default)."""
    return LayerJob(names=tuple(names), shapes=(tuple(shapes[0]), tuple(shapes[1])), matrix=matrix,
                    negative_side=bool(negative_side), second_as_matrix=lambda v: v,
                    masks_back=lambda block: (block.mask1, block.mask2),
                    fan_in=int(shapes[1][1] if fan_in is None else fan_in), label=label,
                    per_weight_eps=per_weight_eps, chooser=chooser, rowwise=True)


def linear_jobs(target: FCTarget, spec: NetSpec, negatives: Sequence[bool]) -> list[LayerJob]:
    """The Linear layer kind: target layer ``i`` is its own matrix; the random pair is ``spec``'s block ``i``."""
    shapes = spec.parameter_shapes()
    return [linear_job((n1, n2), (shapes[n1], shapes[n2]), w, negative_side=neg)
            for (n1, n2), w, neg in zip(block_parameter_names(spec), target.weights, negatives)]


def conv_job(names: tuple[str, str], shapes: tuple[tuple[int, ...], tuple[int, ...]], kernel: np.ndarray, *,
             negative_side: bool, fan_in: int, label: str = "", per_weight_eps: float | None = None,
             chooser: Chooser | None = None) -> LayerJob:
    """The Conv2d layer kind (da Cunha, Natale, Viennot 2022): a kxk target kernel over a random 1x1 + kxk pair.

    ``kernel`` (``c_out x c_in x k x k``, augmented with the constant channel if any) is read as the matrix
    ``K[(t, p, q), j]`` and the random kxk weight ``V`` as ``V[(t, p, q), j*H + r]``
    (:func:`strongticket.construct.conv.kernel_as_matrix`, :func:`~strongticket.construct.conv.second_as_matrix`),
    so instance ``((t, p, q), j)`` is kernel entry ``(t, j, p, q)``; masks and errors go back to the layers'
    and the kernel's shapes.
    """
    from strongticket.construct import conv

    k = int(kernel.shape[-1])
    m, c_in = int(shapes[0][0]), int(shapes[0][1])

    def masks_back(block: BlockResult) -> tuple[torch.Tensor, torch.Tensor]:
        mask1 = block.mask1.numpy().reshape(m, c_in, 1, 1)
        return (torch.from_numpy(np.ascontiguousarray(mask1)),
                torch.from_numpy(conv.matrix_as_kernel(block.mask2.numpy(), k)))

    return LayerJob(names=names, shapes=shapes, matrix=conv.kernel_as_matrix(kernel), negative_side=negative_side,
                    second_as_matrix=conv.second_as_matrix, masks_back=masks_back, fan_in=int(fan_in),
                    errors_back=lambda e: conv.matrix_as_kernel(e, k), label=label, per_weight_eps=per_weight_eps,
                    chooser=chooser, rowwise=True)


def flatten_linear_job(names: tuple[str, str], shapes: tuple[tuple[int, ...], tuple[int, ...]], matrix: np.ndarray,
                       channels: int, *, negative_side: bool, fan_in: int | None = None, label: str = "",
                       per_weight_eps: float | None = None, chooser: Chooser | None = None) -> LayerJob:
    """The Flatten -> Linear layer kind: a random 1x1 conv + ReLU before the Flatten, a random Linear after it.

    ``matrix`` (``d_out x C S``, augmented with the constant channel if any) is the target Linear reading a
    flattened ``C x S`` image; ``shapes`` are the 1x1 weight ``(H C, C, 1, 1)`` and the Linear's
    ``(d_out, H C S)``. The target is read as ``M[(o, s), j]`` and the Linear as ``V[(o, s), j H + r]``
    (:func:`strongticket.construct.flatten_linear.flat_as_matrix`), so instance ``((o, s), j)`` is target
    weight ``(o, j S + s)`` over the products ``u[j, r] V[o, (j H + r) S + s]``, exact by the derivation in
    :mod:`strongticket.construct.flatten_linear`; masks and errors go back to the layers' and the matrix's
    layouts.
    """
    from strongticket.construct import flatten_linear as fl

    d_out, width = matrix.shape
    c = int(channels)
    m = int(shapes[0][0])
    if tuple(shapes[0]) != (m, c, 1, 1) or m % c or tuple(shapes[1]) != (d_out, m * (width // c)) or width % c:
        raise InputError(f"a Flatten -> Linear pair for a ({d_out}, {width}) target over {c} channels needs a "
                         f"(H*{c}, {c}, 1, 1) 1x1 weight and a ({d_out}, H*{width}) Linear, got {tuple(shapes[0])} "
                         f"and {tuple(shapes[1])}")

    def masks_back(block: BlockResult) -> tuple[torch.Tensor, torch.Tensor]:
        mask1 = block.mask1.numpy().reshape(m, c, 1, 1)
        return (torch.from_numpy(np.ascontiguousarray(mask1)),
                torch.from_numpy(fl.matrix_as_flat(block.mask2.numpy(), d_out)))

    return LayerJob(names=tuple(names), shapes=(tuple(shapes[0]), tuple(shapes[1])),
                    matrix=fl.flat_as_matrix(matrix, c), negative_side=bool(negative_side),
                    second_as_matrix=lambda v: fl.flat_as_matrix(v, m), masks_back=masks_back,
                    fan_in=int(shapes[1][1] if fan_in is None else fan_in),
                    errors_back=lambda e: fl.matrix_as_flat(e, d_out), label=label, per_weight_eps=per_weight_eps,
                    chooser=chooser, rowwise=True)


@dataclass(frozen=True, eq=False)
class EngineResult:
    """What :func:`run` returns: masks and per-weight errors of every layer, and their records.

    Attributes
    ----------
    masks : dict of str to bool tensor
        Per random parameter name.
    arrays : dict of str to float64 array
        ``errors.block{i}.pos`` / ``.neg``, each ``(rows, d_in)`` or the kind's layout (``errors_back``).
    layers : list of dict
        One JSON-able record per target layer (errors, statuses, wider-pool retries, misses, timings).
    warnings : list of str
        Short blocks that were used anyway (``strict=False``).
    seconds : dict
        ``generate`` (random weights) and ``solve`` (instances and choice), summed over the layers.
    """

    masks: dict[str, torch.Tensor]
    arrays: dict[str, np.ndarray]
    layers: list[dict[str, Any]]
    warnings: list[str]
    seconds: dict[str, float]


def run(jobs: Sequence[LayerJob], chooser: Chooser, *, distribution: WeightDistribution, seed: int,
        block_size: int, samples: int, per_weight_eps: float, strict: bool, wider_pool: bool,
        short_fix: Callable[[], str], log: Callable[[str], None] | None = None) -> EngineResult:
    """Prune the random pair of every job so that its product sums approximate the job's matrix.

    Parameters
    ----------
    jobs : sequence of LayerJob
        The target layers in order (any layer kind).
    chooser : Chooser
        Picks the subsets (a job's own ``chooser`` takes precedence).
    distribution, seed
        The random network's law and seed (weights regenerated by name, bit for bit).
    block_size : int
        ``H``, neurons per input in every block.
    samples : int
        ``n``, first-pass candidates per instance.
    per_weight_eps : float
        Tolerance of every instance (wider-pool retry and miss reasons); a job's own ``per_weight_eps`` takes
        precedence for its instances.
    strict : bool
        A block with fewer than ``n`` neurons of a needed sign raises :class:`InfeasibleError`; otherwise
        its instances use the neurons it has and a warning is recorded.
    wider_pool : bool
        Retry misses over every neuron of their sign (see :func:`strongticket.construct.blocks.assemble_block`).
    short_fix : callable
        Returns the advice appended to the short-block error (the construction knows its block-size rule).
    log : callable, optional
        Progress lines.
    """
    say = log or (lambda _msg: None)
    H = block_size
    masks: dict[str, torch.Tensor] = {}
    arrays: dict[str, np.ndarray] = {}
    layers: list[dict[str, Any]] = []
    warnings: list[str] = []
    gen_seconds = solve_seconds = 0.0
    for i, job in enumerate(jobs):
        (n1, n2), (s1, _) = job.names, job.shapes
        w, negative = job.matrix, job.negative_side
        eps = per_weight_eps if job.per_weight_eps is None else job.per_weight_eps
        choose = chooser if job.chooser is None else job.chooser
        t0 = time.perf_counter()
        u = first_layer_diagonal(distribution, n1, (int(s1[0]), int(s1[1])), seed, H)
        short = short_inputs(u, samples, negative)
        if short:
            j, sign, have = short[0]
            where = job.label or f"block {i + 1} (target layer {i + 1})"
            msg = (f"{where}: {len(short)} input(s) have fewer than n = {samples} "
                   f"first-layer weights of a needed sign among their {H} hidden neurons (first: input {j}, "
                   f"{have} with u {'>' if sign == '+' else '<'} 0)")
            if strict:
                raise InfeasibleError(f"{msg}; {short_fix()}; or pass strict=False (CLI: --no-strict) to use the "
                                      f"neurons available")
            warnings.append(msg + "; those instances use all the neurons available")
            say("warning: " + warnings[-1])
        v = _second_matrix(job, distribution, seed)
        t1 = time.perf_counter()
        say(f"block {i + 1}/{len(jobs)}: {w.size} target weights, {(1 + negative) * w.size} instances "
            f"of {samples} candidates (block size {H})")
        block = assemble_block(w, u, v, choose, samples=samples, negative_side=negative, eps=eps,
                               wider_pool=wider_pool)
        del v  # the largest array of the layer: gone before the next layer draws its own
        t2 = time.perf_counter()
        gen_seconds += t1 - t0
        solve_seconds += t2 - t1
        masks[n1], masks[n2] = job.masks_back(block)
        err = np.maximum(block.errors_pos, block.errors_neg)
        say(f"block {i + 1}/{len(jobs)} done: max error {float(err.max()):.3g}, {t1 - t0:.1f} s generating, "
            f"{t2 - t1:.1f} s solving")
        back = job.errors_back or (lambda e: e)
        arrays[f"errors.block{i}.pos"] = back(block.errors_pos)
        arrays[f"errors.block{i}.neg"] = back(block.errors_neg)
        counts = np.concatenate([block.counts_pos, block.counts_neg] if negative else [block.counts_pos])
        layers.append({
            "block": i, "target_shape": list(w.shape), "negative_side": negative, "random_layers": [n1, n2],
            "hidden": int(s1[0]), "instances": int((1 + negative) * w.size),
            "candidates_per_instance": {"min": int(counts.min()), "mean": float(counts.mean()),
                                        "max": int(counts.max())},
            "short_inputs": len(short),
            "errors": summarize_errors(err, eps),
            "status": block.status,
            "mean_subset_size": float(block.subset_sizes.mean()),
            "wider_pool": {"instances": int(len(block.retried)), "recovered": block.recovered,
                           "indices": block.retried[:MAX_LISTED].tolist(),
                           "indices_format": "[sign (0: u > 0, 1: u < 0), target row, target column]"},
            "misses": {"count": int(sum(block.miss_reasons.values())), "reasons": block.miss_reasons,
                       "listed": block.misses},
            "kept": [int(block.mask1.sum()), int(block.mask2.sum())],
            "seconds": {"generate": round(t1 - t0, 3), "solve": round(t2 - t1, 3)},
        })
    return EngineResult(masks=masks, arrays=arrays, layers=layers, warnings=warnings,
                        seconds={"generate": gen_seconds, "solve": solve_seconds})


def _second_matrix(job: LayerJob, distribution: WeightDistribution, seed: int) -> np.ndarray:
    """The job's random second layer as its matrix view; row by row into one array for a ``rowwise`` job.

    The drawn chunks equal the whole tensor bit for bit (:meth:`WeightDistribution.iter_rows`), so both ways
    give the same matrix; the chunked one holds the layer once, not twice (drawn tensor and its view).
    """
    name, shape = job.names[1], job.shapes[1]
    if not job.rowwise:
        return job.second_as_matrix(distribution.tensor(name, shape, seed, fan_in=job.fan_in).numpy())
    out: np.ndarray | None = None
    row = 0
    for chunk in distribution.iter_rows(name, shape, seed, fan_in=job.fan_in):
        part = job.second_as_matrix(chunk.numpy())
        if out is None:
            per_row = part.shape[0] // chunk.shape[0]
            out = np.empty((per_row * int(shape[0]), part.shape[1]), dtype=part.dtype)
        out[row:row + part.shape[0]] = part
        row += part.shape[0]
    assert out is not None and row == out.shape[0]  # every row drawn once, in order
    return out


def miss_totals(layers: Sequence[dict[str, Any]]) -> tuple[dict[str, int], list[dict]]:
    """Misses over all layers: count per reason, and the listed misses (each layer lists at most a few)."""
    reasons: dict[str, int] = {}
    listed: list[dict] = []
    for li in layers:
        for key, k in li["misses"]["reasons"].items():
            reasons[key] = reasons.get(key, 0) + k
        listed += li["misses"]["listed"]
    return reasons, listed


def check_common_options(objective: str, samples: Any, distribution: Any) -> None:
    """The argument checks every 2L construction shares (one-line :class:`InputError` naming the argument)."""
    if objective not in ("min_error", "sparsest"):
        raise InputError(f"objective must be 'min_error' or 'sparsest', got {objective!r}")
    if samples is not None:
        check_int("samples", samples)
    if distribution is not None and not isinstance(distribution, WeightDistribution):
        raise InputError(f"distribution must be a WeightDistribution, got {type(distribution).__name__}")


def choose_block_size(samples: int, delta: float, needs: Sequence[tuple[int, float]],
                      block_size: int | None) -> tuple[int, int]:
    """``(needed, used)`` hidden neurons per input: the binomial union-bound rule's block size
    (:func:`strongticket.construct.blocks.block_size_for` over ``needs``) and the one given, if any."""
    needed = block_size_for(samples, delta, needs)
    if block_size is None:
        return needed, needed
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < samples:
        raise InputError(f"block_size must be an integer >= samples ({samples}), got {block_size!r}")
    return needed, block_size


def finish_ticket(spec: NetSpec, distribution: WeightDistribution, seed: int, masks: dict[str, torch.Tensor],
                  provenance: dict[str, Any], arrays: dict[str, torch.Tensor], target_state: dict[str, torch.Tensor],
                  *, record_target: bool, strict: bool, miss_message: str | None) -> Ticket:
    """The Ticket of a 2L construction, with the target's weights recorded if asked; with ``strict`` a miss
    (``miss_message`` not None) raises :class:`InfeasibleError` instead."""
    if record_target:
        for name, t in target_state.items():
            arrays[f"target.{name}"] = t.detach().cpu()
    ticket = Ticket(spec, distribution, seed, masks, provenance, arrays)
    if strict and miss_message is not None:
        raise InfeasibleError(f"{miss_message}; or pass strict=False (CLI: --no-strict) to keep the ticket anyway")
    return ticket


__all__ = ["EngineResult", "LayerJob", "check_common_options", "choose_block_size", "conv_job", "finish_ticket",
           "flatten_linear_job", "linear_job", "linear_jobs", "miss_totals", "run"]
