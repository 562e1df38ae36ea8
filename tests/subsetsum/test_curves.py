"""Success curves and fits; the statistical RSS scaling law (Lueker 1998: required n linear in log(1/ε)) is marked slow."""

from __future__ import annotations

import numpy as np
import pytest

from strongticket.errors import InputError
from strongticket.subsetsum.curves import fit_line, fit_required_n_vs_log_eps, success_curve


def test_fit_line_recovers_an_exact_line_with_zero_width_interval():
    x = np.arange(6.0)
    fit = fit_line(x, 3.0 + 2.0 * x)
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(3.0) and fit.r2 == pytest.approx(1.0)
    assert fit.slope_ci[1] - fit.slope_ci[0] == pytest.approx(0.0, abs=1e-9)


def test_success_is_monotone_in_eps_and_required_n_is_monotone_in_confidence():
    c = success_curve([4, 8, 12], [0.1, 0.01], trials=300, seed=1)
    assert np.all(c.success[:, 0] >= c.success[:, 1])  # eps sorted descending: larger eps, more success
    assert np.all(np.nan_to_num(c.required_n(0.5), nan=99) <= np.nan_to_num(c.required_n(0.9), nan=99))


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": [0.0]}, "eps values must be in"),
    ({"eps": [1.5]}, "eps values must be in"),
    ({"eps": [float("nan")]}, "eps values must be in"),  # --mrss-eps nan: once a plot of nothing, exit 0
    ({"eps": [0.1, float("nan")]}, "eps values must be in"),
    ({"trials": 0}, "trials must be >= 1"),
])
def test_bad_curve_arguments_are_refused(kwargs, message):
    args = {"ns": [4], "eps": [0.1], "trials": 10, **kwargs}
    with pytest.raises(InputError, match=message):
        success_curve(args.pop("ns"), args.pop("eps"), **args)


@pytest.mark.slow
def test_required_n_grows_linearly_in_log_inverse_eps():
    """Lueker 1998 / da Cunha et al. 2022: n*(ε) = Θ(log 1/ε). Measured: slope ≈ 1 sample per halving of ε.

    Band, fixed before the run: slope within [0.6, 1.6] per log2(1/ε) (the counting bound forces >= ~1
    asymptotically; the prototype measured ~1.1) and R² >= 0.9, with 4000 trials per n.
    """
    c = success_curve(list(range(4, 27)), [0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4], trials=4000, seed=3)
    fit = fit_required_n_vs_log_eps(c, 0.95)
    assert 0.6 <= fit.slope <= 1.6, fit
    assert fit.r2 >= 0.9, fit
