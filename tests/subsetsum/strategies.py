"""Hypothesis strategies for subset-sum instances."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


@st.composite
def integer_instances(draw, max_n: int = 12, max_t: int = 6):
    """Instances with small integer values: sums are exact in float64, so ties are real ties."""
    n = draw(st.integers(0, max_n))
    t = draw(st.integers(1, max_t))
    x = draw(st.lists(st.lists(st.integers(-4, 4), min_size=n, max_size=n), min_size=t, max_size=t))
    z = draw(st.lists(st.integers(-8, 8), min_size=t, max_size=t))
    return np.asarray(z, dtype=np.float64), np.asarray(x, dtype=np.float64).reshape(t, n)


@st.composite
def float_instances(draw, min_n: int = 0, max_n: int = 14, max_t: int = 6):
    """Instances with arbitrary floats in [-1, 1] (candidates) and [-2, 2] (targets)."""
    n = draw(st.integers(min_n, max_n))
    t = draw(st.integers(1, max_t))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (t, n))
    z = rng.uniform(-2, 2, t)
    return z, x
