"""Checks of scalar arguments at the library's public entry points, with one-line messages.

Every check names the argument as the caller knows it (a keyword such as ``eps`` or a CLI flag such as
``--hidden``), says what was expected and what was received, and returns the value in its canonical type
(``int`` or ``float``). Booleans are refused where a number is expected: ``True`` is not a sample count.
This module imports nothing above :mod:`strongticket.errors`, so every layer may use it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from strongticket.errors import InputError


def check_int(name: str, value: Any, *, lo: int | None = 1, hi: int | None = None) -> int:
    """``value`` as an ``int`` in ``[lo, hi]`` (either end open when None); ``lo`` defaults to 1 (a count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (lo is not None and value < lo) or (
            hi is not None and value > hi):
        if lo == 1 and hi is None:
            span = "a positive integer"
        elif hi is None:
            span = f"an integer >= {lo}" if lo is not None else "an integer"
        else:
            span = f"an integer in [{lo}, {hi}]" if lo is not None else f"an integer <= {hi}"
        raise InputError(f"{name} must be {span}, got {value!r}")
    return int(value)


#: Largest seed given to a random generator as it stands: numpy takes any integer >= 0, torch one below 2**64,
#: the numba kernels a signed 64-bit one.
SEED_MAX = (1 << 63) - 1


def check_generator_seed(name: str, value: Any) -> int:
    """``value`` as the seed of a random generator: an ``int`` in ``[0, SEED_MAX]``."""
    return check_int(name, value, lo=0, hi=SEED_MAX)


def check_float(name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = True, hi_open: bool = True) -> float:
    """``value`` as a finite ``float`` within the bounds (open ends by default); NaN and infinities are refused."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        raise InputError(f"{name} must be {_span(lo, hi, lo_open, hi_open)}, got {value!r}")
    return float(value)


def check_unit_open(name: str, value: Any) -> float:
    """``value`` as a float in the open interval (0, 1): an accuracy ``eps`` or a probability ``delta``."""
    return check_float(name, value, lo=0.0, hi=1.0)


def check_positive(name: str, value: Any) -> float:
    """``value`` as a finite float > 0."""
    return check_float(name, value, lo=0.0)


def _span(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is None and hi is None:
        return "a finite number"
    if hi is None:
        return f"a finite number {'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return f"a finite number {'<' if hi_open else '<='} {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
