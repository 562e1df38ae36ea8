"""The Malach find-one baseline: at most one random product per instance, read from the masks."""

from __future__ import annotations

import numpy as np
import pytest

from strongticket.construct import malach
from strongticket.construct.blocks import block_parameter_names

from .test_pensia import small_target


def kept_per_instance(ticket) -> np.ndarray:
    """Kept second-layer entries per (block, output, input, sign of u), counted from the masks alone."""
    weights = ticket.random_weights()
    H = ticket.provenance["block_size"]
    out = []
    for n1, n2 in block_parameter_names(ticket.spec):
        m1, k2 = weights[n1].numpy(), ticket.masks[n2].numpy()
        d_in = m1.shape[1]
        u = m1.reshape(d_in, H, d_in)[np.arange(d_in), :, np.arange(d_in)]  # (d_in, H): M1[j*H + r, j]
        k3 = k2.reshape(k2.shape[0], d_in, H)
        out += [(k3 & (u > 0)[None]).sum(axis=2).reshape(-1), (k3 & (u < 0)[None]).sum(axis=2).reshape(-1)]
    return np.concatenate(out)


@pytest.mark.parametrize("kwargs", [dict(per_weight_eps=0.02, samples=10, seed=3),
                                    dict(per_weight_eps=0.05, samples=30, seed=1)])
def test_find_one_keeps_at_most_one_product_per_instance(kwargs):
    t = malach.construct(small_target(), strict=False, **kwargs)
    kept = kept_per_instance(t)
    assert kept.max() == 1  # every instance keeps at most one, and some keep one
    assert t.provenance["chooser"] == "find_one"


def test_find_one_retries_over_the_whole_pool_and_still_keeps_one():
    kw = dict(per_weight_eps=0.02, samples=10, seed=3, strict=False)
    first = malach.construct(small_target(), wider_pool=False, **kw)
    wide = malach.construct(small_target(), **kw)
    assert wide.provenance["wider_pool"]["instances"] > 0
    assert wide.provenance["weights_above_eps"] < first.provenance["weights_above_eps"]
    assert kept_per_instance(wide).max() == 1


def test_find_one_needs_samples():
    with pytest.raises(malach.pensia.InputError, match="needs samples"):
        malach.construct(small_target(), per_weight_eps=0.02)


def test_find_one_refuses_solver_options_instead_of_ignoring_them():
    with pytest.raises(malach.pensia.InputError, match="takes no objective, solver"):
        malach.construct(small_target(), per_weight_eps=0.02, samples=10, solver="exact", objective="sparsest")
