"""mrss_descent (the baseline of mrss_search): a local optimum of its flip/swap moves, registered, bad input one line."""

from __future__ import annotations

import numpy as np
import pytest

from strongticket.errors import InputError
from strongticket.subsetsum import SubsetSumProblem, solve
from strongticket.subsetsum.benchmark import normal_scaled_instances as nsn
from strongticket.subsetsum.mrss_descent import mrss_descent


def _err(x, z, sel, norm):
    diff = np.abs(z - (x * sel[..., None]).sum(axis=-2))
    return diff.max(axis=-1) if norm == "linf" else np.sqrt((diff ** 2).sum(axis=-1))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_no_single_flip_or_swap_improves_the_result(norm):
    x, z = nsn(6, 30, 4, 0)
    sel = mrss_descent(x, z, norm)
    for t in range(6):
        base = _err(x[t], z[t], sel[t], norm)
        for i in range(30):
            s = sel[t].copy()
            s[i] = not s[i]
            assert _err(x[t], z[t], s, norm) >= base - 1e-12
            if sel[t, i]:
                for j in np.flatnonzero(~sel[t]):
                    s2 = sel[t].copy()
                    s2[i], s2[j] = False, True
                    assert _err(x[t], z[t], s2, norm) >= base - 1e-12
        assert base < np.abs(z[t]).max() if norm == "linf" else True


def test_registered_and_reported_through_solve():
    x, z = nsn(5, 70, 9, 1)
    res = solve(SubsetSumProblem(z, x), "mrss_descent")
    assert res.method == "mrss_descent" and np.array_equal(res.selection, mrss_descent(x, z))


@pytest.mark.parametrize("args, word", [((np.zeros((2, 3, 4)), np.zeros((2, 3))), "shape"),
                                        ((np.zeros((2, 3, 4)), np.zeros((2, 4)), "l1"), "norm"),
                                        ((np.full((2, 3, 4), np.inf), np.zeros((2, 4))), "finite")])
def test_bad_input_is_one_line(args, word):
    with pytest.raises(InputError, match=word) as info:
        mrss_descent(*args)
    assert "\n" not in str(info.value)
