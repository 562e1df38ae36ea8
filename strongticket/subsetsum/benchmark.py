"""Solver benchmark: throughput, peak memory and error quantiles per method and n, on shared instances.

Every method in one run sees the same instances (``instances.random_problem`` with one seed), so the
ratios between methods in one table are meaningful on a noisy shared machine even when the absolute
figures are not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from strongticket.errors import InputError, MethodUnavailableError
from strongticket.subsetsum import registry
from strongticket.subsetsum.api import solve
from strongticket.subsetsum.method import SolveOptions
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.problem import (SubsetSumProblem, SubsetSumResult, approximation_errors, check_device,
                                             selection_sums)
from strongticket.validation import check_generator_seed


def _rss_bytes() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            import os

            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class PeakMemory:
    """Samples the resident set size every ``interval`` seconds while active; ``peak_above_start`` in bytes.

    Catches allocations that ``tracemalloc`` does not see (numba's and torch's allocators).
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def peak_above_start(self) -> int:
        return max(0, self.peak - self.start)


class _DevicePeak:
    """Peak CUDA allocation during the block when ``problem`` lives on a GPU (else ``peak`` is None)."""

    def __init__(self, problem: SubsetSumProblem) -> None:
        self.cuda = problem.device.startswith("cuda")
        self.peak: int | None = None

    def __enter__(self) -> _DevicePeak:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base


def _on_device(problem: SubsetSumProblem, device: str) -> SubsetSumProblem:
    import torch

    return SubsetSumProblem(torch.tensor(problem.targets, device=device),
                            torch.tensor(problem.candidates, device=device), problem.norm)


@dataclass(frozen=True)
class BenchRow:
    """One (method, n) cell of the benchmark.

    ``targets_per_s`` counts instances solved per wall-clock second (the best of ``repeats`` runs);
    ``peak_mb`` is the resident memory above the start of the call; ``io_mb`` the size of the inputs
    and outputs, for comparison (memory independent of T means ``peak_mb`` tracks ``io_mb``).
    """

    method: str
    dist: str
    n: int
    T: int
    seconds: float
    targets_per_s: float
    peak_mb: float
    io_mb: float
    err_median: float
    err_p99: float
    err_max: float
    status: dict[str, int]
    speedup_vs_exact: float | None = None
    matches_exact: float | None = None
    note: str = ""


def _io_mb(T: int, n: int) -> float:
    # targets + candidates (float64) in, selection (bool) + sums + errors + status out
    return (T * 8 + T * n * 8 + T * n + T * 8 * 2 + T) / 2**20


def _row(method: str, dist: str, n: int, T: int, seconds: float, peak: int, res: SubsetSumResult) -> BenchRow:
    e = res.errors
    return BenchRow(method=method, dist=dist, n=n, T=T, seconds=seconds, targets_per_s=T / seconds,
                    peak_mb=peak / 2**20, io_mb=_io_mb(T, n), err_median=float(np.median(e)),
                    err_p99=float(np.quantile(e, 0.99)), err_max=float(e.max()), status=res.status_counts())


def run_benchmark(
    ns: Sequence[int],
    methods: Sequence[str] = ("exact", "milp"),
    *,
    targets: int = 100_000,
    dist: str = "uniform",
    seed: int = 0,
    repeats: int = 3,
    slow_targets: int = 20,
    time_limit: float = 5.0,
    device: str = "cpu",
    on_step: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Benchmark ``methods`` on 1-D instances for every n in ``ns``.

    Parameters
    ----------
    ns : sequence of int
        Numbers of candidates per instance.
    methods : sequence of str
        Registered method names. ``exact`` and ``torch`` run on ``targets`` instances; every other
        method (CP-SAT, heuristics, brute force) on the first ``slow_targets`` of the same instances,
        with ``time_limit`` seconds per instance where the method takes one.
    targets : int
        T for the fast methods.
    dist : {"uniform", "product"}
        Candidate law (targets are U[-1, 1]).
    repeats : int
        Timed repetitions of the fast methods (the best is kept); one warm-up run compiles first.
    device : str
        Where the ``torch`` method's tensors live (``"cuda"`` to time the GPU solver; its peak memory
        is then the device's peak allocation). The transfer to the device is not timed; the copy of the
        results back to the host is.

    Returns
    -------
    list of BenchRow
        One row per (method, n); rows of slow methods carry ``speedup_vs_exact``, the ratio of the exact
        solver's throughput to theirs on the same n, and ``matches_exact``, the share of their instances
        solved to the exact optimum (within 1e-12).
    """
    if not ns or any(n < 1 for n in ns):
        raise InputError(f"ns must be a non-empty list of positive integers, got {list(ns)}")
    if targets < 1 or slow_targets < 1 or repeats < 1:
        raise InputError(f"targets, slow_targets and repeats must be >= 1, got {targets}, {slow_targets}, {repeats}")
    seed = check_generator_seed("seed", seed)
    if "torch" in methods:
        check_device(device)
    rows: list[BenchRow] = []
    fast = {"exact", "torch"}
    for n in ns:
        problem = random_problem(targets, n, dist=dist, seed=seed)
        exact_rate = None
        for method in methods:
            if on_step:
                on_step(f"{method} n={n}")
            try:
                registry.ensure_supports(registry.get(method), problem, SolveOptions())
            except MethodUnavailableError as exc:
                nan = float("nan")
                rows.append(BenchRow(method, dist, n, 0, nan, nan, nan, nan, nan, nan, nan, {}, note=str(exc)))
                continue
            if method in fast:
                target = _on_device(problem, device) if method == "torch" else problem
                solve(target.subset(slice(0, 8)), method)  # compile / warm up
                best, peak, res = np.inf, 0, None
                for _ in range(repeats):
                    with PeakMemory() as mem, _DevicePeak(target) as dev:
                        t0 = time.perf_counter()
                        res = solve(target, method)
                        dt = time.perf_counter() - t0
                    if dt < best:
                        best = dt
                    peak = max(peak, dev.peak if dev.peak is not None else mem.peak_above_start)
                row = _row(method, dist, n, targets, best, peak, res)
                if method == "exact":
                    exact_rate = row.targets_per_s
                rows.append(row)
            else:
                sub = problem.subset(slice(0, min(slow_targets, targets)))
                extra = {"time_limit": time_limit} if method in ("milp", "local_search", "mrss_milp") else {}
                with PeakMemory() as mem:
                    t0 = time.perf_counter()
                    res = solve(sub, method, **extra)
                    dt = time.perf_counter() - t0
                row = _row(method, dist, n, sub.num_instances, dt, mem.peak_above_start, res)
                if n <= 44:
                    best_err = solve(sub, "exact").errors
                    share = float(np.mean(res.errors <= best_err + 1e-12))
                    row = BenchRow(**{**row.__dict__, "matches_exact": share})
                rows.append(row)
        if exact_rate is not None:
            for i, r in enumerate(rows):
                if r.n == n and r.method not in fast and not r.note:
                    rows[i] = BenchRow(**{**r.__dict__, "speedup_vs_exact": exact_rate / r.targets_per_s})
    return rows


# ----- MRSS: mrss_search against the plain descent ---------------------------------------------------
def normal_scaled_instances(T: int, n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Normally-scaled normal candidates and uniform targets: ``(candidates (T, n, d), targets (T, d))``.

    A candidate is a scalar N(0, 1) times an N(0, I_d) vector (the samples ``u·V`` of structured pruning,
    da Cunha, d'Amore, Natale 2023); targets are U[-1, 1]^d. One ``default_rng(seed)`` stream.
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, n, 1)) * rng.standard_normal((T, n, d)), rng.uniform(-1.0, 1.0, (T, d))


@dataclass(frozen=True)
class MrssBenchRow:
    """One (d, n) cell: ``mrss_search`` and the plain descent on the same instances, in one process.

    Errors are ℓ∞. ``*_tps_2cores`` = 2 / (CPU seconds per target): the throughput of two otherwise idle
    cores, read from CPU time because the machine may be shared; ``search_wall_tps`` is wall-clock.
    ``ratio`` = descent median / search median. The ``cpsat_*`` fields (None where CP-SAT did not run)
    compare CP-SAT (``mrss_milp``, ``cpsat_limit`` seconds per instance) with the search on the first
    ``cpsat_targets`` instances.
    """

    d: int
    n: int
    targets: int
    restarts: int
    descent_median: float
    descent_max: float
    search_median: float
    search_max: float
    ratio: float
    descent_tps_2cores: float
    search_tps_2cores: float
    search_wall_tps: float
    cpsat_targets: int | None = None
    cpsat_limit: float | None = None
    cpsat_median: float | None = None
    cpsat_max: float | None = None
    cpsat_optimal: int | None = None
    search_median_on_cpsat_targets: float | None = None

    @staticmethod
    def markdown_header() -> str:
        return ("| d | n | descent median | descent max | search median | search max | ratio | descent targets/s "
                "(2 cores, CPU) | search targets/s (2 cores, CPU) | search wall targets/s | CP-SAT median "
                "(search, same targets) |\n|---|---|---|---|---|---|---|---|---|---|---|")

    def markdown(self) -> str:
        cp = "" if self.cpsat_median is None else (
            f"{self.cpsat_median:.4f} ({self.search_median_on_cpsat_targets:.4f}), {self.cpsat_targets} targets")
        return (f"| {self.d} | {self.n} | {self.descent_median:.4f} | {self.descent_max:.4f} | "
                f"{self.search_median:.4f} | {self.search_max:.4f} | {self.ratio:.2f} | "
                f"{self.descent_tps_2cores:.0f} | {self.search_tps_2cores:.0f} | {self.search_wall_tps:.0f} | {cp} |")


def _timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """``(result, wall seconds, CPU seconds of the whole process)``."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def run_mrss_benchmark(
    dims: Sequence[int],
    ns: Sequence[int],
    *,
    targets: int = 64,
    seed: int = 0,
    restarts: int | None = None,
    cpsat_cells: Collection[tuple[int, int]] = (),
    cpsat_targets: int = 5,
    cpsat_limit: float = 10.0,
    on_row: Callable[[MrssBenchRow], None] | None = None,
) -> list[MrssBenchRow]:
    """``mrss_search`` against ``mrss_descent`` (ℓ∞) for every (d, n), on :func:`normal_scaled_instances`.

    Parameters
    ----------
    dims, ns : sequences of int
        The cells: every d with every n (instances seeded by ``seed + 1000·d + n``).
    targets : int
        Instances per cell.
    restarts : int, optional
        ``mrss_search``'s runs (None: its default, from n·d).
    cpsat_cells : collection of (d, n)
        Cells where CP-SAT (``mrss_milp``, one worker, ``cpsat_limit`` seconds per instance) also runs on
        the first ``cpsat_targets`` instances.
    on_row : callable, optional
        Called with each row as soon as it is measured.

    Returns
    -------
    list of MrssBenchRow
    """
    from strongticket.subsetsum.mrss_descent import mrss_descent
    from strongticket.subsetsum.mrss_search import auto_restarts, mrss_search
    from strongticket.subsetsum.problem import SubsetSumProblem

    if not dims or not ns or any(v < 1 for v in (*dims, *ns)):
        raise InputError(f"dims and ns must be non-empty lists of positive integers, got {list(dims)} and {list(ns)}")
    if targets < 1 or cpsat_targets < 1:
        raise InputError(f"targets and cpsat_targets must be >= 1, got {targets} and {cpsat_targets}")
    if not cpsat_limit > 0:
        raise InputError(f"cpsat_limit must be a number of seconds > 0, got {cpsat_limit}")
    seed = check_generator_seed("seed", seed)
    x0, z0 = normal_scaled_instances(2, 16, 3, 0)  # compile both before timing
    mrss_descent(x0, z0)
    mrss_search(x0, z0, restarts=2, steps=1)
    rows = []
    for d in dims:
        for n in ns:
            x, z = normal_scaled_instances(targets, n, d, seed + 1000 * d + n)
            sel_d, _, c_desc = _timed(lambda: mrss_descent(x, z))
            res, w_s, c_s = _timed(lambda: mrss_search(x, z, seed=seed, restarts=restarts))
            err_d = approximation_errors(z, selection_sums(x, sel_d), "linf")
            row = MrssBenchRow(
                d=d, n=n, targets=targets, restarts=auto_restarts(n, d) if restarts is None else restarts,
                descent_median=float(np.median(err_d)), descent_max=float(err_d.max()),
                search_median=float(np.median(res.errors)), search_max=float(res.errors.max()),
                ratio=float(np.median(err_d) / max(np.median(res.errors), 1e-300)),
                descent_tps_2cores=2 * targets / max(c_desc, 1e-9), search_tps_2cores=2 * targets / max(c_s, 1e-9),
                search_wall_tps=targets / max(w_s, 1e-9))
            if (d, n) in cpsat_cells:
                k = min(cpsat_targets, targets)
                out = solve(SubsetSumProblem(z[:k], x[:k], "linf"), "mrss_milp", time_limit=cpsat_limit)
                row = MrssBenchRow(**{**row.__dict__, "cpsat_targets": k, "cpsat_limit": cpsat_limit,
                                      "cpsat_median": float(np.median(out.errors)),
                                      "cpsat_max": float(out.errors.max()),
                                      "cpsat_optimal": int(np.sum(out.status == 0)),
                                      "search_median_on_cpsat_targets": float(np.median(res.errors[:k]))})
            rows.append(row)
            if on_row:
                on_row(row)
    return rows
