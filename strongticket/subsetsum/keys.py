"""Subset keys: one int64 that orders subsets the way every solver breaks ties.

``key = popcount << 56 | bitmask``: comparing keys compares subsets first by size, then by bitmask
(bit ``i`` set when candidate ``i`` is selected). Among equally good subsets every method returns the
one with the smallest key, so exact solvers agree with each other bit for bit. Bitmasks need n <= 56.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PC_SHIFT = 56
PC_UNIT = np.int64(1) << PC_SHIFT
MASK_BITS = (np.int64(1) << PC_SHIFT) - np.int64(1)
MAX_KEYED_N = 48


def half_keys(h: int) -> np.ndarray:
    """Keys of all 2^h subsets of h candidates, indexed by bitmask, shape (2^h,) int64."""
    masks = np.arange(1 << h, dtype=np.int64)
    pc = np.zeros_like(masks)
    for i in range(h):
        pc += (masks >> i) & 1
    return (pc << PC_SHIFT) | masks


def masks_to_selection(masks: Any, n: int) -> Any:
    """Turn bitmasks (T,) int64 into a bool selection (T, n); numpy or torch (on the masks' device)."""
    if isinstance(masks, np.ndarray):
        return ((masks[:, None] >> np.arange(n, dtype=np.int64)) & 1).astype(bool)
    import torch

    bits = torch.arange(n, dtype=torch.int64, device=masks.device)
    return ((masks[:, None] >> bits) & 1).to(torch.bool)
