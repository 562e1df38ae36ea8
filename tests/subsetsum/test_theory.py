"""Sample-size formulas of strongticket.subsetsum.theory (Lueker 1998; Pensia et al. 2020; Malach et al. 2020; Becchetti et al. 2022)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from strongticket.errors import InputError
from strongticket.subsetsum import theory

unit = st.floats(1e-9, 0.999, allow_nan=False)
consts = st.floats(0.1, 8.0)


@given(unit, unit, consts)
def test_lueker_sample_size_is_the_smallest_n_whose_bound_is_within_delta(eps, delta, C):
    n = theory.lueker_sample_size(eps, delta, C)
    assert theory.lueker_failure_bound(n, eps, C) <= delta
    if n > 1:
        assert theory.lueker_failure_bound(n - 1, eps, C) > delta


@given(unit, unit, consts)
def test_lueker_sample_size_meets_the_rearranged_inequality(eps, delta, C):
    n = theory.lueker_sample_size(eps, delta, C)
    assert n >= 2 * C * math.log(1 / eps) + 2 * math.sqrt(2 * n * math.log(1 / delta)) - 1e-9


@given(st.integers(1, 500), unit, consts)
def test_lueker_failure_bound_is_a_probability_non_increasing_in_n(n, eps, C):
    b = theory.lueker_failure_bound(n, eps, C)
    assert 0.0 < b <= 1.0
    assert theory.lueker_failure_bound(n + 1, eps, C) <= b


def test_lueker_failure_bound_is_trivial_outside_the_corollarys_range():
    # n/2 <= C ln(1/eps): Corollary 2.5 says nothing
    assert theory.lueker_failure_bound(4, 0.01, 1.0) == 1.0
    n, eps = 100, 0.01
    assert theory.lueker_failure_bound(n, eps) == pytest.approx(math.exp(-(n / 2 - math.log(100)) ** 2 / (2 * n)))


@given(unit, unit, unit, unit)
def test_sample_sizes_grow_with_one_over_eps_and_one_over_delta(e1, e2, d1, d2):
    lo_e, hi_e = sorted((e1, e2))
    lo_d, hi_d = sorted((d1, d2))
    assert theory.lueker_sample_size(lo_e, hi_d) >= theory.lueker_sample_size(hi_e, hi_d)
    assert theory.lueker_sample_size(hi_e, lo_d) >= theory.lueker_sample_size(hi_e, hi_d)
    assert theory.rss_sample_size(lo_e, lo_d, 10) >= theory.rss_sample_size(hi_e, hi_d, 10)
    w_small = theory.pensia_width(5, 7, 3, lo_e, lo_d)
    w_large = theory.pensia_width(5, 7, 3, hi_e, hi_d)
    assert w_small.samples_per_weight >= w_large.samples_per_weight
    assert theory.malach_samples_per_weight(lo_e, lo_d) >= theory.malach_samples_per_weight(hi_e, hi_d)
    assert theory.mrss_sample_size_shape(3, lo_e) >= theory.mrss_sample_size_shape(3, hi_e)
    assert theory.counting_lower_bound(lo_e, 2) >= theory.counting_lower_bound(hi_e, 2)


@given(unit, unit, st.integers(1, 10**6))
def test_rss_sample_size_spends_delta_over_the_instances(eps, delta, m):
    assert theory.rss_sample_size(eps, delta, m) >= theory.rss_sample_size(eps, delta, 1)
    # interval 1/2 is Lueker's own range: the union bound alone
    assert theory.rss_sample_size(eps, delta, m, interval=0.5) == theory.lueker_sample_size(eps, delta / m)
    # [-1, 1]: two groups, each (eps/2)-good with failure delta/(2m)
    assert theory.rss_sample_size(eps, delta, m) == 2 * theory.lueker_sample_size(eps / 2, delta / (2 * m))


def test_pensia_width_form():
    w = theory.pensia_width(784, 500, 2, 0.01, 0.1)
    n = math.ceil(math.log2(784 * 500 * 2 / 0.01))
    assert w.samples_per_weight == n
    assert w.hidden_width == 2 * n * 784
    assert w.samples_per_weight_both_signs == 2 * n
    assert theory.pensia_width(784, 500, 2, 0.01, 0.1, C=2.0).samples_per_weight == math.ceil(2 * math.log2(784 * 500 * 2 / 0.01))


def test_pensia_per_weight_eps_rule():
    assert theory.pensia_per_weight_eps(0.1, 2, 4, 9) == pytest.approx(0.1 / (2 * 2 * 6))


@given(unit, st.integers(1, 50), st.integers(1, 100), st.integers(1, 100))
def test_pensia_per_weight_eps_keeps_the_network_error_within_eps(eps, L, d_in, d_out):
    e = theory.pensia_per_weight_eps(eps, L, d_in, d_out)
    eta = e * math.sqrt(d_in * d_out)
    assert math.expm1(L * eta) <= eps * (1 + 1e-12)


@given(unit, unit)
def test_malach_pool_finds_one_product_with_probability_one_minus_delta(eps, delta):
    n = theory.malach_samples_per_weight(eps, delta)
    p = min(1.0, 2 * eps * theory.PRODUCT_DENSITY_HALF)
    log_miss = math.log1p(-p) if p < 1 else -math.inf  # log of one draw's chance to miss
    assert n * log_miss <= math.log(delta) + 1e-9
    if n > 1:
        assert (n - 1) * log_miss > math.log(delta) - 1e-9


def test_malach_literature_shape_is_one_over_eps_squared():
    assert theory.malach_samples_per_weight_literature(0.01) == pytest.approx(1e4)
    assert theory.malach_samples_per_weight_literature(0.01, C=3) == pytest.approx(3e4)


def test_counting_lower_bound_values():
    assert theory.counting_lower_bound(0.5) == pytest.approx(1.0)
    assert theory.counting_lower_bound(2**-10) == pytest.approx(10.0)
    assert theory.counting_lower_bound(2**-10, d=3) == pytest.approx(30.0)
    assert theory.counting_lower_bound(0.01, 2) == pytest.approx(2 * math.log2(100))


def test_mrss_shape_values_and_the_gap_to_counting():
    L = math.log(100)
    assert theory.mrss_sample_size_shape(1, 0.01) == pytest.approx(L * L)
    assert theory.mrss_sample_size_shape(4, 0.01, C=0.5) == pytest.approx(0.5 * 64 * L * (L + math.log(4)))
    # the upper bound's shape grows like d^3, the counting bound like d
    ratio = [theory.mrss_sample_size_shape(d, 0.01) / theory.counting_lower_bound(0.01, d) for d in (1, 2, 4, 8)]
    assert all(b > a for a, b in zip(ratio, ratio[1:]))


@pytest.mark.parametrize("call, name", [
    (lambda: theory.lueker_sample_size(0.0, 0.1), "eps"),
    (lambda: theory.lueker_sample_size(0.1, 1.0), "delta"),
    (lambda: theory.lueker_failure_bound(0, 0.1), "n"),
    (lambda: theory.lueker_failure_bound(10, 0.1, C=-1), "C"),
    (lambda: theory.rss_sample_size(0.1, 0.1, num_instances=0), "num_instances"),
    (lambda: theory.pensia_width(0, 3, 1, 0.1, 0.1), "d_in"),
    (lambda: theory.pensia_width(3, 3, 1.5, 0.1, 0.1), "num_layers"),
    (lambda: theory.pensia_per_weight_eps(1.5, 1, 1, 1), "eps"),
    (lambda: theory.malach_samples_per_weight(0.1, delta=-0.1), "delta"),
    (lambda: theory.mrss_sample_size_shape(True, 0.1), "d"),
    (lambda: theory.counting_lower_bound(float("nan")), "eps"),
])
def test_invalid_arguments_name_the_argument_and_the_value(call, name):
    with pytest.raises(InputError, match=rf"^{name} must be .*got "):
        call()
