"""The scalar checks every public entry point shares: canonical types back, one-line errors naming the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongticket.errors import InputError
from strongticket.validation import (SEED_MAX, check_float, check_generator_seed, check_int, check_positive,
                                     check_unit_open)


@given(st.integers(min_value=1, max_value=10**9))
def test_check_int_returns_every_positive_integer_unchanged_as_int(n: int) -> None:
    assert check_int("n", n) == n and type(check_int("n", np.int64(n))) is int


@pytest.mark.parametrize("value", [0, -3, True, 2.0, "3", None, np.float64(2.0)])
def test_check_int_refuses_non_counts_naming_the_argument(value: object) -> None:
    with pytest.raises(InputError, match=r"^--hidden must be a positive integer, got "):
        check_int("--hidden", value)


def test_check_int_bounds_are_stated_in_the_message() -> None:
    with pytest.raises(InputError, match=r"an integer in \[0, 5\], got 6"):
        check_int("k", 6, lo=0, hi=5)
    assert check_int("k", 0, lo=0, hi=5) == 0


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5, math.nan, math.inf, True, "0.1"])
def test_check_unit_open_refuses_everything_outside_the_open_interval(value: object) -> None:
    with pytest.raises(InputError, match=r"^eps must be in \(0, 1\), got "):
        check_unit_open("eps", value)


@given(st.floats(min_value=1e-300, max_value=1e300))
def test_check_positive_accepts_every_finite_positive_float(x: float) -> None:
    assert check_positive("radius", x) == x


def test_check_float_closed_ends_include_their_bounds() -> None:
    assert check_float("p", 1.0, lo=0.0, hi=1.0, hi_open=False) == 1.0
    with pytest.raises(InputError, match=r"in \(0, 1\], got 0"):
        check_float("p", 0, lo=0.0, hi=1.0, hi_open=False)


@pytest.mark.parametrize("value", [-1, 2 ** 63, 2 ** 64, 1.0, True, "0", None])
def test_check_generator_seed_refuses_what_no_generator_takes(value: object) -> None:
    with pytest.raises(InputError, match=r"^--seed must be an integer in \[0, 9223372036854775807\], got "):
        check_generator_seed("--seed", value)


def test_check_generator_seed_accepts_both_ends() -> None:
    assert check_generator_seed("seed", 0) == 0 and check_generator_seed("seed", SEED_MAX) == 2 ** 63 - 1
