"""Seeded random subset-sum instances: the laws the RSS/MRSS theorems and the constructions meet.

* ``uniform``: candidates i.i.d. U[-1, 1] (Lueker 1998; Pensia et al. 2020, Theorem 1);
* ``product``: each candidate the product of two independent U[-1, 1] draws, the law of the
  products v_i·u_i in a Pensia 2-layer block (density ½·ln(1/|z|) on [-1, 1]);
* ``normal``: i.i.d. N(0, 1) (Becchetti et al. 2022 for MRSS vectors).

Targets are U[-target_range, target_range] (per coordinate for MRSS).
"""

from __future__ import annotations

import numpy as np

from strongticket.errors import InputError
from strongticket.subsetsum.problem import SubsetSumProblem

DISTRIBUTIONS: tuple[str, ...] = ("uniform", "product", "normal")


def random_candidates(rng: np.random.Generator, shape: tuple[int, ...], dist: str) -> np.ndarray:
    """Draw an array of ``shape`` from the candidate law ``dist`` with ``rng`` (float64)."""
    if dist == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if dist == "product":
        return rng.uniform(-1.0, 1.0, shape) * rng.uniform(-1.0, 1.0, shape)
    if dist == "normal":
        return rng.standard_normal(shape)
    raise InputError(f"dist must be one of {DISTRIBUTIONS}, got {dist!r}")


def random_problem(
    T: int,
    n: int,
    *,
    dist: str = "uniform",
    d: int | None = None,
    seed: int = 0,
    norm: str = "linf",
    target_range: float = 1.0,
) -> SubsetSumProblem:
    """T random instances with n candidates each.

    Parameters
    ----------
    T, n : int
        Batch size (>= 1) and candidates per instance (>= 0).
    dist : {"uniform", "product", "normal"}
        Candidate law.
    d : int, optional
        Target dimension for MRSS (targets (T, d), candidates (T, n, d)); ``None`` for scalar RSS.
    seed : int
        Seed of ``np.random.default_rng``; the same arguments give the same instances.
    norm : {"linf", "l2"}
        MRSS error norm.
    target_range : float
        Targets are drawn from U[-target_range, target_range].
    """
    if T < 1:
        raise InputError(f"T must be >= 1, got {T}")
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    if d is not None and d < 1:
        raise InputError(f"d must be >= 1 (or None for scalar RSS), got {d}")
    if not target_range > 0:
        raise InputError(f"target_range must be > 0, got {target_range}")
    rng = np.random.default_rng(seed)
    if d is None:
        z = rng.uniform(-target_range, target_range, T)
        x = random_candidates(rng, (T, n), dist)
    else:
        z = rng.uniform(-target_range, target_range, (T, d))
        x = random_candidates(rng, (T, n, d), dist)
    return SubsetSumProblem(z, x, norm=norm)
