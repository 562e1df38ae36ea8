"""The exact solver's two min_error paths: same answers, and the one-target path's bounded working memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from strongticket.subsetsum.exact import FOUR_TARGET_MAX_BYTES, four_target_bytes, one_target_bytes, solve_exact_keys
from tests.subsetsum.strategies import float_instances, integer_instances


def _both_paths(z, x, eps=None, threads=None):
    return (solve_exact_keys(x, z, eps=eps, num_threads=threads, one_target=False),
            solve_exact_keys(x, z, eps=eps, num_threads=threads, one_target=True))


def _assert_same(a, b):
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


@given(integer_instances(max_n=14), st.sampled_from([None, 0.5, 2.0]))
def test_one_target_path_equals_four_target_path_with_ties(inst, eps):
    z, x = inst  # small integers: equal sums and equal errors, resolved by the keyed path and the smallest key
    _assert_same(*_both_paths(z, x, eps))


@settings(max_examples=40)
@given(float_instances(min_n=0, max_n=20, max_t=9), st.sampled_from([None, 1e-3]))
def test_one_target_path_equals_four_target_path_on_floats(inst, eps):
    z, x = inst
    _assert_same(*_both_paths(z, x, eps))


def test_one_target_path_equals_four_target_path_on_many_targets_and_threads():
    rng = np.random.default_rng(11)
    x, z = rng.uniform(-1, 1, (301, 23)), rng.uniform(-2, 2, 301)
    x[::7, 3] = x[::7, 5]  # equal candidates: equal sums in some targets
    a, b = _both_paths(z, x, threads=2)
    _assert_same(a, b)
    _assert_same(b, solve_exact_keys(x, z, num_threads=1, one_target=True))


def test_the_four_target_path_stops_where_its_tables_pass_the_memory_cap():
    assert four_target_bytes(36) <= FOUR_TARGET_MAX_BYTES < four_target_bytes(37)
    assert one_target_bytes(44) * 6 < four_target_bytes(44)


_WORKING_MEMORY = textwrap.dedent("""
    import json, sys
    import numpy as np
    from strongticket.subsetsum.exact import solve_exact_keys

    def rss_kb(field):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

    rng = np.random.default_rng(3)
    n, kind = int(sys.argv[1]), sys.argv[2]
    if kind == "float":
        x, z = rng.uniform(-1, 1, (1, n)), rng.uniform(-2, 2, 1)
    else:  # integers: equal sums everywhere, so the keyed path runs
        x, z = rng.integers(-4, 5, (1, n)).astype(np.float64), np.array([3.0])
    solve_exact_keys(x[:, :10].copy(), z, num_threads=1)  # compile / load the kernel first
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # VmHWM := VmRSS
    before = rss_kb("VmRSS")
    solve_exact_keys(x, z, num_threads=1)
    print(json.dumps({"working_bytes": (rss_kb("VmHWM") - before) * 1024}))
""")


def _working_bytes(n: int, kind: str) -> int:
    out = subprocess.run([sys.executable, "-c", _WORKING_MEMORY, str(n), kind], capture_output=True, text=True,
                         check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])["working_bytes"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads and resets VmHWM in /proc/self")
@pytest.mark.parametrize("kind", ["float", "int"])
def test_a_44_candidate_solve_stays_within_the_one_target_tables(kind):
    # Bound from the algorithm: the one-target path writes three float64 sum tables and int32 ranks of
    # 2^22 + 1 entries (112 MB), plus three int64 key tables when the keyed path runs (integer data);
    # 16 MB of slack for the interpreter. The four-target path would write 768 MB.
    bound = one_target_bytes(44, keyed=kind == "int") + (16 << 20)
    assert bound < four_target_bytes(44)
    assert _working_bytes(44, kind) <= bound
