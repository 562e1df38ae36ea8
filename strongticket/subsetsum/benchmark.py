"""Solver benchmark: throughput, peak memory and error quantiles per method and n, on shared instances.

Every method in one run sees the same instances (``instances.random_problem`` with one seed), so the
ratios between methods in one table are meaningful on a noisy shared machine even when the absolute
figures are not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from strongticket.errors import InputError, MethodUnavailableError
from strongticket.subsetsum import registry
from strongticket.subsetsum.api import solve
from strongticket.subsetsum.method import SolveOptions
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.problem import SubsetSumProblem, SubsetSumResult


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

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for, but torch sees no CUDA device")
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
