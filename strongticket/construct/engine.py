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
adding a chooser means writing a :class:`Chooser`. The construction modules (:mod:`.pensia`, :mod:`.malach`,
:mod:`.cnn2l`) keep their paper's parameters, theory and messages; each has a ``prepare`` that checks and plans
(a :class:`Prepared`) and a ``construct`` that builds it. The method is described in ``docs/constructions.md``.

Work units: a layer's instances are solved a few rows of its second layer at a time (:func:`plan`,
:data:`UNIT_ELEMENTS` random weights per unit), each unit drawn, solved and merged (:class:`Merger`) before the
next is drawn, so that a construction holds its masks, its errors and one unit, never a whole random layer.
Every instance is solved on its own, so the ticket does not depend on the units; they are also what
:mod:`strongticket.construct.shard` splits into slices (:func:`run_units` runs any subset of them).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from strongticket.construct.blocks import (
    DRAW_ELEMENTS,
    MAX_LISTED,
    BlockResult,
    Chooser,
    FCTarget,
    assemble_block,
    block_size_for,
    block_parameter_names,
    first_layer_diagonal,
    mask1_from_used,
    short_inputs,
    summarize_errors,
)
from strongticket.errors import InfeasibleError, InputError
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import NetSpec
from strongticket.subsetsum.problem import Status
from strongticket.ticket import Ticket
from strongticket.validation import check_int


#: Random second-layer weights per work unit: the rows of a layer drawn, solved and masked together. It bounds
#: the working memory of a layer (its float32 rows and their float64 candidates: a few tens of MB) whatever the
#: layer's size, and it is the grain of a sharded construction (``strongticket.construct.shard``). The results
#: do not depend on it (every instance is solved on its own); the plan of units does, so shards record it.
UNIT_ELEMENTS = 1 << 22

@dataclass(frozen=True, eq=False)
class LayerJob:
    """One target layer as its layer kind presents it to the engine.

    Attributes
    ----------
    names : (str, str)
        Parameter names of the random pair (first layer, second layer) in the random spec.
    shapes : (tuple of int, tuple of int)
        Their shapes. The first is ``(d_in H, d_in)`` up to trailing 1s (a 1x1 convolution): hidden neuron
        ``j H + r`` belongs to input ``j``.
    matrix : float64 array, shape (rows, d_in)
        Target weights as a matrix: instance ``(row, j)`` approximates ``matrix[row, j]``.
    negative_side : bool
        Build the ``u < 0`` instances (the layer's input can be negative).
    second_as_matrix : callable
        Random second-layer weights (numpy, its own shape) -> ``(rows, d_in * H)`` float32, entry
        ``[row, j*H + r]`` multiplying hidden neuron ``(j, r)`` in instance ``(row, j)``.
    matrix_as_second : callable
        The inverse view: a ``(rows', d_in * H)`` array of matrix rows (a mask) -> the second layer's own layout.
        For a ``rowwise`` job it is applied to the matrix rows of a run of second-layer rows.
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
        Each row (first index) of the random second layer maps to the same number of consecutive matrix rows,
        in order (``second_as_matrix`` and ``matrix_as_second`` work on any run of rows): the layer is then
        split into work units of a few rows (:func:`plan`), drawn, solved and masked one after the other, so
        that the layer is never held whole. Otherwise the layer is one unit.
    """

    names: tuple[str, str]
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    matrix: np.ndarray
    negative_side: bool
    second_as_matrix: Callable[[np.ndarray], np.ndarray]
    fan_in: int
    matrix_as_second: Callable[[np.ndarray], np.ndarray] = lambda m: m
    errors_back: Callable[[np.ndarray], np.ndarray] | None = None
    label: str = ""
    per_weight_eps: float | None = None
    chooser: Chooser | None = None
    rowwise: bool = False

    @property
    def rows_per_second_row(self) -> int:
        """Matrix rows per row of the random second layer (1: Linear, k^2: Conv2d, S: Flatten -> Linear); all of
        them for a job that is not ``rowwise`` (its one unit is "row" 0 of 1)."""
        return self.matrix.shape[0] // int(self.shapes[1][0]) if self.rowwise else self.matrix.shape[0]


def linear_job(names: tuple[str, str], shapes: tuple[tuple[int, ...], tuple[int, ...]], matrix: np.ndarray, *,
               negative_side: bool, fan_in: int | None = None, label: str = "", per_weight_eps: float | None = None,
               chooser: Chooser | None = None) -> LayerJob:
    """The Linear layer kind: the target matrix ``(d_out, d_in)`` is its own view, the random pair
    ``Linear(d_in, H d_in)`` + ReLU, ``Linear(H d_in, d_out)`` (fan-in of the second: ``H d_in`` by default)."""
    return LayerJob(names=tuple(names), shapes=(tuple(shapes[0]), tuple(shapes[1])), matrix=matrix,
                    negative_side=bool(negative_side), second_as_matrix=lambda v: v,
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
    return LayerJob(names=names, shapes=shapes, matrix=conv.kernel_as_matrix(kernel), negative_side=negative_side,
                    second_as_matrix=conv.second_as_matrix, matrix_as_second=lambda m: conv.matrix_as_kernel(m, k),
                    fan_in=int(fan_in), errors_back=lambda e: conv.matrix_as_kernel(e, k), label=label,
                    per_weight_eps=per_weight_eps, chooser=chooser, rowwise=True)


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
    positions = width // c
    return LayerJob(names=tuple(names), shapes=(tuple(shapes[0]), tuple(shapes[1])),
                    matrix=fl.flat_as_matrix(matrix, c), negative_side=bool(negative_side),
                    second_as_matrix=lambda v: fl.flat_as_matrix(v, m),
                    matrix_as_second=lambda mat: fl.matrix_as_flat(mat, mat.shape[0] // positions),
                    fan_in=int(shapes[1][1] if fan_in is None else fan_in),
                    errors_back=lambda e: fl.matrix_as_flat(e, d_out), label=label, per_weight_eps=per_weight_eps,
                    chooser=chooser, rowwise=True)


@dataclass(frozen=True)
class Unit:
    """A work unit: rows ``[start, stop)`` of one job's random second layer, with every instance they serve.

    Attributes
    ----------
    layer : int
        The job's index.
    part : int
        The unit's index within its layer.
    rows : (int, int)
        ``(start, stop)``, rows of the second layer (first index); matrix rows ``start * q`` to ``stop * q``
        with ``q`` = :attr:`LayerJob.rows_per_second_row`.
    """

    layer: int
    part: int
    rows: tuple[int, int]

    @property
    def id(self) -> str:
        """Its name, unique in a plan and safe as a file name: ``layer0-part3``."""
        return f"layer{self.layer}-part{self.part}"


def plan(jobs: Sequence[LayerJob], unit_elements: int | None = None) -> list[Unit]:
    """The work units of ``jobs`` in their one order: layer by layer, rows ascending.

    A ``rowwise`` job is cut into runs of ``max(1, unit_elements // row size)`` second-layer rows (default
    :data:`UNIT_ELEMENTS`); another job is one unit.
    """
    size = UNIT_ELEMENTS if unit_elements is None else int(unit_elements)
    units: list[Unit] = []
    for i, job in enumerate(jobs):
        rows = int(job.shapes[1][0])
        if not job.rowwise:  # one unit: "row" 0 of 1 stands for the whole matrix
            units.append(Unit(i, 0, (0, 1)))
            continue
        step = max(1, size // max(1, math.prod(job.shapes[1][1:])))
        units += [Unit(i, p, (a, min(rows, a + step))) for p, a in enumerate(range(0, rows, step))]
    return units


@dataclass(frozen=True, eq=False)
class UnitResult:
    """The outcome of one unit: its rows' masks, per-weight errors and counts, ready to merge.

    Attributes
    ----------
    unit : Unit
    mask2 : bool array
        The unit's rows of the second layer's mask, in the layer's own layout.
    used : bool array, shape (d_in, H)
        Hidden neurons ``(j, r)`` some of the unit's instances keep (the first layer keeps their union).
    errors_pos, errors_neg : float64 arrays, shape (matrix rows of the unit, d_in)
        ``|A+ - W|`` and ``|A- + W|`` per instance.
    counts : int array, shape (2, d_in)
        First-pass candidates per instance and sign (the same in every unit of a layer).
    short : list of [int, str, int]
        Inputs short of a needed sign (:func:`strongticket.construct.blocks.short_inputs`; the same in every unit).
    status : dict
        Status name -> instances.
    subset_sizes : int
        Kept second-layer entries over the unit's instances, summed.
    retried : int array, shape (R, 3)
        ``(sign, row, col)`` (matrix rows of the layer) of the first :data:`MAX_LISTED` wider-pool retries in
        that order; ``retried_count`` counts them all.
    retried_count, recovered : int
    misses : list of dict
        The first :data:`MAX_LISTED` instances above eps in the order (sign, pool, row, col), rows of the layer.
    miss_reasons : dict
        Reason -> instances.
    seconds : dict
        ``generate`` and ``solve``.
    """

    unit: Unit
    mask2: np.ndarray
    used: np.ndarray
    errors_pos: np.ndarray
    errors_neg: np.ndarray
    counts: np.ndarray
    short: list
    status: dict[str, int]
    subset_sizes: int
    retried: np.ndarray
    retried_count: int
    recovered: int
    misses: list[dict]
    miss_reasons: dict[str, int]
    seconds: dict[str, float]


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


@dataclass(frozen=True, eq=False)
class Settings:
    """What :func:`run` needs besides the jobs and the chooser (see :func:`run` for each field)."""

    distribution: WeightDistribution
    seed: int
    block_size: int
    samples: int
    per_weight_eps: float
    strict: bool
    wider_pool: bool
    short_fix: Callable[[], str]
    log: Callable[[str], None] | None = None


@dataclass(frozen=True, eq=False)
class Prepared:
    """A 2L construction checked and planned, before any instance is solved.

    A construction module's ``prepare`` returns it; :meth:`build` runs the engine and makes the ticket (what its
    ``construct`` does), and :mod:`strongticket.construct.shard` runs a slice of :attr:`units` instead and
    merges the slices into the same ticket with :attr:`finish`.

    Attributes
    ----------
    jobs : tuple of LayerJob
    chooser : Chooser
    settings : Settings
    finish : callable
        :class:`EngineResult` -> :class:`Ticket` (provenance, target record, the strict check).
    traced : TracedNet
        The target as the construction read it (spec-named weights).
    """

    jobs: tuple[LayerJob, ...]
    chooser: Chooser
    settings: Settings
    finish: Callable[[EngineResult], Ticket]
    traced: Any

    @property
    def units(self) -> list[Unit]:
        """:func:`plan` of the jobs."""
        return plan(self.jobs)

    def build(self) -> Ticket:
        """Run every unit and make the ticket."""
        return self.finish(run(self.jobs, self.chooser, **vars_of(self.settings)))


def vars_of(settings: Settings) -> dict[str, Any]:
    """``settings`` as the keyword arguments of :func:`run` / :func:`run_units`."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def run(jobs: Sequence[LayerJob], chooser: Chooser, *, distribution: WeightDistribution, seed: int,
        block_size: int, samples: int, per_weight_eps: float, strict: bool, wider_pool: bool,
        short_fix: Callable[[], str], log: Callable[[str], None] | None = None,
        unit_elements: int | None = None) -> EngineResult:
    """Prune the random pair of every job so that its product sums approximate the job's matrix.

    The layers are worked in units (:func:`plan`), each drawn, solved and merged before the next is drawn, so
    that the memory held is the masks and errors plus one unit, not a layer.

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
    unit_elements : int, optional
        Second-layer weights per unit (default :data:`UNIT_ELEMENTS`); the result does not depend on it.
    """
    units = plan(jobs, unit_elements)
    merger = Merger(jobs, units, per_weight_eps=per_weight_eps, samples=samples, block_size=block_size, log=log)
    for result in run_units(jobs, chooser, units, distribution=distribution, seed=seed, block_size=block_size,
                            samples=samples, per_weight_eps=per_weight_eps, strict=strict, wider_pool=wider_pool,
                            short_fix=short_fix, log=log):
        merger.add(result)
    return merger.result()


def run_units(jobs: Sequence[LayerJob], chooser: Chooser, units: Sequence[Unit], *,
              distribution: WeightDistribution, seed: int, block_size: int, samples: int, per_weight_eps: float,
              strict: bool, wider_pool: bool, short_fix: Callable[[], str],
              log: Callable[[str], None] | None = None) -> Iterator[UnitResult]:
    """Solve ``units`` (any subset of :func:`plan`'s, in plan order) and yield each one's :class:`UnitResult`.

    Per layer with a unit to run: the first layer's diagonal ``u`` and the short-block check (as :func:`run`),
    then one pass over the second layer's rows in chunks, keeping the units' rows only. Arguments as for
    :func:`run`.
    """
    say = log or (lambda _msg: None)
    H = block_size
    mine: dict[int, list[Unit]] = {}
    for unit in units:
        mine.setdefault(unit.layer, []).append(unit)
    for i, job in enumerate(jobs):
        if i not in mine:
            continue
        (n1, _), (s1, _) = job.names, job.shapes
        w, negative = job.matrix, job.negative_side
        eps = per_weight_eps if job.per_weight_eps is None else job.per_weight_eps
        choose = chooser if job.chooser is None else job.chooser
        t0 = time.perf_counter()
        u = first_layer_diagonal(distribution, n1, (int(s1[0]), int(s1[1])), seed, H)
        short = short_inputs(u, samples, negative)
        if short:
            msg = _short_message(i, job, short, samples, H)
            if strict:
                raise InfeasibleError(f"{msg}; {short_fix()}; or pass strict=False (CLI: --no-strict) to use the "
                                      f"neurons available")
            say("warning: " + msg + "; those instances use all the neurons available")
        spent = time.perf_counter() - t0  # drawing u: counted with the layer's first unit here
        say(f"block {i + 1}/{len(jobs)}: {w.size} target weights, {(1 + negative) * w.size} instances of {samples} "
            f"candidates (block size {H}), {len(mine[i])} unit(s) here")
        q = job.rows_per_second_row
        for unit, v, drawn in _second_rows(job, distribution, seed, mine[i]):
            t1 = time.perf_counter()
            a, b = unit.rows
            block = assemble_block(w[a * q:b * q], u, v, choose, samples=samples, negative_side=negative, eps=eps,
                                   wider_pool=wider_pool)
            del v  # the unit's rows: gone before the next unit draws its own
            solve = time.perf_counter() - t1
            yield _unit_result(unit, job, block, a * q, short, spent + drawn, solve)
            spent = 0.0


def _second_rows(job: LayerJob, distribution: WeightDistribution, seed: int,
                 units: Sequence[Unit]) -> Iterator[tuple[Unit, np.ndarray, float]]:
    """Per unit (in row order): the unit, its rows of the job's random second layer as the matrix view
    (float32), and the seconds they took to draw.

    One pass over the layer in row chunks (:meth:`WeightDistribution.iter_rows`: the chunks equal the whole
    tensor bit for bit); rows of no unit given are drawn and dropped (the stream is serial).
    """
    name, shape = job.names[1], tuple(int(s) for s in job.shapes[1])
    if not job.rowwise:
        t0 = time.perf_counter()
        v = job.second_as_matrix(distribution.tensor(name, shape, seed, fan_in=job.fan_in).numpy())
        yield units[0], v, time.perf_counter() - t0
        return
    chunks = distribution.iter_rows(name, shape, seed, fan_in=job.fan_in, chunk_elements=DRAW_ELEMENTS)
    have = np.empty((0,) + shape[1:], dtype=np.float32)  # rows drawn and not yet used, from row `at`
    at = 0
    for unit in sorted(units, key=lambda unit: unit.rows):
        t0 = time.perf_counter()
        a, b = unit.rows
        out = np.empty((b - a,) + shape[1:], dtype=np.float32)
        filled = 0
        while filled < b - a:
            if have.shape[0] == 0:
                have = next(chunks).numpy()
            if at < a:  # rows before the unit: another slice's, drawn only to advance the stream
                drop = min(a - at, have.shape[0])
                have, at = have[drop:], at + drop
                continue
            take = min(b - a - filled, have.shape[0])
            out[filled:filled + take] = have[:take]
            have, at, filled = have[take:], at + take, filled + take
        v = job.second_as_matrix(out)
        del out
        yield unit, v, time.perf_counter() - t0
        del v


def _short_message(i: int, job: LayerJob, short: list, samples: int, block_size: int) -> str:
    j, sign, have = short[0]
    where = job.label or f"block {i + 1} (target layer {i + 1})"
    return (f"{where}: {len(short)} input(s) have fewer than n = {samples} first-layer weights of a needed sign "
            f"among their {block_size} hidden neurons (first: input {j}, {have} with u "
            f"{'>' if sign == '+' else '<'} 0)")


def _unit_result(unit: Unit, job: LayerJob, block: BlockResult, row0: int, short: list, generate: float,
                 solve: float) -> UnitResult:
    """A unit's :class:`UnitResult` from its block (rows shifted by ``row0`` to the layer's matrix rows)."""
    retried = block.retried.copy()
    retried[:, 1] += row0
    misses = [{**m, "row": m["row"] + row0} for m in block.misses]
    counts = np.stack([block.counts_pos, block.counts_neg])
    return UnitResult(unit=unit, mask2=np.ascontiguousarray(job.matrix_as_second(block.mask2.numpy())),
                      used=block.used, errors_pos=block.errors_pos, errors_neg=block.errors_neg, counts=counts,
                      short=[list(s) for s in short], status=dict(block.status),
                      subset_sizes=int(block.subset_sizes.sum()), retried=retried[:MAX_LISTED],
                      retried_count=int(len(block.retried)), recovered=int(block.recovered), misses=misses,
                      miss_reasons=dict(block.miss_reasons), seconds={"generate": generate, "solve": solve})


def _status_order(name: str) -> int:
    return int(Status[name.upper()])


class Merger:
    """Assembles :class:`UnitResult` s, in any order, into the :class:`EngineResult` one :func:`run` gives.

    A layer's masks and error arrays are allocated at its first unit and filled row by row; its record is
    made when its last unit arrives, from the whole layer's arrays (so the summaries are those of the whole
    layer, bit for bit) and from counts that merge exactly (sums, and the first :data:`MAX_LISTED` listed
    retries and misses in their order). Mutable, used by one caller.

    Parameters
    ----------
    jobs : sequence of LayerJob
    units : sequence of Unit
        The whole plan (:func:`plan`); :meth:`result` needs every unit added once.
    per_weight_eps, samples, block_size
        As for :func:`run`.
    log : callable, optional
        One line per finished layer.
    """

    def __init__(self, jobs: Sequence[LayerJob], units: Sequence[Unit], *, per_weight_eps: float, samples: int,
                 block_size: int, log: Callable[[str], None] | None = None) -> None:
        self.jobs = list(jobs)
        self.samples, self.block_size = int(samples), int(block_size)
        self.per_weight_eps = per_weight_eps
        self.say = log or (lambda _msg: None)
        self.expected: dict[int, set[str]] = {}
        for unit in units:
            self.expected.setdefault(unit.layer, set()).add(unit.id)
        self.open: dict[int, dict[str, Any]] = {}
        self.done: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    def add(self, res: UnitResult) -> None:
        """Take one unit's result (each unit once)."""
        i = res.unit.layer
        job = self.jobs[i]
        if i in self.done or res.unit.id not in self.expected.get(i, ()):
            raise InputError(f"unit {res.unit.id} is not in the plan or was merged already")
        acc = self.open.get(i)
        if acc is None:
            rows, d_in = job.matrix.shape
            acc = self.open[i] = {
                "mask2": np.zeros(tuple(int(s) for s in job.shapes[1]), dtype=bool),
                "used": np.zeros(res.used.shape, dtype=bool),
                "pos": np.zeros((rows, d_in)), "neg": np.zeros((rows, d_in)), "units": set(), "counts": res.counts,
                "short": res.short, "status": {}, "sizes": 0, "retried": [], "retried_count": 0, "recovered": 0,
                "misses": [], "reasons": {}, "generate": 0.0, "solve": 0.0}
        if res.unit.id in acc["units"]:
            raise InputError(f"unit {res.unit.id} was merged already")
        a, b = res.unit.rows
        q = job.rows_per_second_row
        if job.rowwise:
            acc["mask2"][a:b] = res.mask2
        else:
            acc["mask2"][...] = res.mask2
        acc["used"] |= res.used
        acc["pos"][a * q:b * q] = res.errors_pos
        acc["neg"][a * q:b * q] = res.errors_neg
        for key, value in res.status.items():
            acc["status"][key] = acc["status"].get(key, 0) + int(value)
        for key, value in res.miss_reasons.items():
            acc["reasons"][key] = acc["reasons"].get(key, 0) + int(value)
        acc["sizes"] += int(res.subset_sizes)
        acc["retried"].append(np.asarray(res.retried, dtype=np.int64).reshape(-1, 3))
        acc["retried_count"] += int(res.retried_count)
        acc["recovered"] += int(res.recovered)
        acc["misses"] += res.misses
        acc["generate"] += res.seconds["generate"]
        acc["solve"] += res.seconds["solve"]
        acc["units"].add(res.unit.id)
        if acc["units"] == self.expected[i]:
            self.done[i] = self._close(i, self.open.pop(i))

    def _close(self, i: int, acc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        job = self.jobs[i]
        (n1, n2), (s1, _) = job.names, job.shapes
        w, negative = job.matrix, job.negative_side
        eps = self.per_weight_eps if job.per_weight_eps is None else job.per_weight_eps
        mask1 = mask1_from_used(acc["used"]).reshape(tuple(int(s) for s in s1))
        err = np.maximum(acc["pos"], acc["neg"])
        counts = acc["counts"][:1 + negative].reshape(-1)
        retried = np.concatenate(acc["retried"])
        retried = retried[np.lexsort((retried[:, 2], retried[:, 1], retried[:, 0]))][:MAX_LISTED]
        listed = sorted(acc["misses"], key=lambda m: (m["sign"], m["pool"], m["row"], m["col"]))[:MAX_LISTED]
        back = job.errors_back or (lambda e: e)
        arrays = {f"errors.block{i}.pos": back(acc["pos"]), f"errors.block{i}.neg": back(acc["neg"])}
        short = acc["short"]
        warning = None
        if short:
            warning = (_short_message(i, job, short, self.samples, self.block_size)
                       + "; those instances use all the neurons available")
        record = {
            "block": i, "target_shape": list(w.shape), "negative_side": negative, "random_layers": [n1, n2],
            "hidden": int(s1[0]), "instances": int((1 + negative) * w.size),
            "candidates_per_instance": {"min": int(counts.min()), "mean": float(counts.mean()),
                                        "max": int(counts.max())},
            "short_inputs": len(short),
            "errors": summarize_errors(err, eps),
            "status": dict(sorted(acc["status"].items(), key=lambda kv: _status_order(kv[0]))),
            # the mean of the (2, rows, d_in) sizes: an exact integer sum over an exact count, as numpy gives it
            "mean_subset_size": float(np.float64(acc["sizes"]) / np.float64(2 * w.size)),
            "wider_pool": {"instances": acc["retried_count"], "recovered": acc["recovered"],
                           "indices": retried.tolist(),
                           "indices_format": "[sign (0: u > 0, 1: u < 0), target row, target column]"},
            "misses": {"count": int(sum(acc["reasons"].values())), "reasons": acc["reasons"], "listed": listed},
            "kept": [int(mask1.sum()), int(acc["mask2"].sum())],
            "seconds": {"generate": round(acc["generate"], 3), "solve": round(acc["solve"], 3)},
        }
        self.say(f"block {i + 1}/{len(self.jobs)} done: max error {float(err.max()):.3g}, "
                 f"{acc['generate']:.1f} s generating, {acc['solve']:.1f} s solving")
        masks = {n1: torch.from_numpy(mask1), n2: torch.from_numpy(acc["mask2"])}
        return {"masks": masks, "arrays": arrays, "warning": warning}, record

    def result(self) -> EngineResult:
        """The :class:`EngineResult` of every layer (all units added)."""
        missing = sorted(set(range(len(self.jobs))) - set(self.done))
        if missing:
            raise InputError(f"units of layer(s) {missing} are missing: cannot merge")
        masks: dict[str, torch.Tensor] = {}
        arrays: dict[str, np.ndarray] = {}
        layers, warnings = [], []
        generate = solve = 0.0
        for i in range(len(self.jobs)):
            out, record = self.done[i]
            masks.update(out["masks"])
            arrays.update(out["arrays"])
            layers.append(record)
            if out["warning"]:
                warnings.append(out["warning"])
            generate += record["seconds"]["generate"]
            solve += record["seconds"]["solve"]
        return EngineResult(masks=masks, arrays=arrays, layers=layers, warnings=warnings,
                            seconds={"generate": generate, "solve": solve})


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


__all__ = ["DRAW_ELEMENTS", "UNIT_ELEMENTS", "EngineResult", "LayerJob", "Merger", "Prepared", "Settings", "Unit",
           "UnitResult", "check_common_options", "choose_block_size", "conv_job", "finish_ticket",
           "flatten_linear_job", "linear_job", "linear_jobs", "miss_totals", "plan", "run", "run_units", "vars_of"]
