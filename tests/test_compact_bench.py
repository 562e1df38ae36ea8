"""``benchmark_compact``: one row per (module, batch), medians of timed passes, errors before any timing."""

from __future__ import annotations

import pytest

from strongticket.compact_bench import benchmark_compact
from strongticket.errors import InputError
from tests.test_compact import _ticket


def test_rows_cover_every_module_and_batch_with_the_masked_network_as_the_unit():
    rows = benchmark_compact(_ticket("kernel"), batches=(1, 4), repeats=3, warmup=1)
    assert [(r["module"], r["batch"]) for r in rows] == [
        (m, b) for b in (1, 4) for m in ("compact", "masked random network", "target")]
    for r in rows:
        assert r["median_ms"] > 0 and r["peak_device_bytes"] is None and r["device"] == "cpu"
        if r["module"] == "masked random network":
            assert r["speedup_vs_masked"] == 1.0
    compact = next(r for r in rows if r["module"] == "compact")
    masked = next(r for r in rows if r["module"] == "masked random network")
    assert compact["module_bytes"] < masked["module_bytes"]  # physically smaller


@pytest.mark.parametrize("kwargs,match", [({"batches": (0,)}, "--batches"), ({"repeats": 0}, "--repeats"),
                                          ({"device": "bogus"}, "--device")])
def test_bad_options_are_refused_before_any_timing(kwargs, match):
    with pytest.raises(InputError, match=match):
        benchmark_compact(_ticket("kernel"), **kwargs)
