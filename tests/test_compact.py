"""Ticket.compact(): same function on random inputs, fewer parameters; the compacted directory round-trips."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from strongticket.compact import load_compact, num_parameters, save_compact
from strongticket.construct import structured
from strongticket.errors import InputError
from tests.construct.test_structured import _whole


def _ticket(granularity):
    torch.manual_seed(1)
    t = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(4, 3, 3, bias=False), nn.ReLU(), nn.Flatten())
    with torch.no_grad():
        for m in t:
            if isinstance(m, nn.Conv2d):
                m.weight.uniform_(-0.3, 0.3)
    return structured.construct(t, per_weight_eps=0.2, block_size=64, granularity=granularity, input_shape=(2, 8, 8),
                                strict=False, search_options={"steps": 10, "restarts": 1})


@pytest.mark.parametrize("granularity", ["kernel", "filter"])
def test_compact_preserves_function_and_has_fewer_parameters(granularity):
    ticket = _ticket(granularity)
    dense = ticket.to_module(dtype=torch.float64)
    small = ticket.compact(torch.float64)
    x = torch.randn(7, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(small(x), dense(x), rtol=0, atol=1e-12)
    assert num_parameters(small) < ticket.num_params
    kept_channels = sum(li["kept_channels"] for li in ticket.provenance["layers"])
    # at most the kept channels (one zero channel stands for a pair that keeps none)
    pairs = len(ticket.provenance["layers"])
    assert sum(m.conv.weight.numel() for m in small.layers if hasattr(m, "conv")) <= kept_channels + pairs


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(granularity=st.sampled_from(["kernel", "group", "filter"]), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_compact_preserves_function_and_has_fewer_parameters_with_linear_layers_and_biases(granularity, bias, seed):
    """Whole targets (conv, Linear after a Flatten, Linear; biases on a constant channel): same function on
    random inputs of either sign, fewer parameters than the random network, and no more than it keeps."""
    ticket = structured.construct(_whole(bias, seed=seed), per_weight_eps=0.1, block_size=24,
                                  granularity=granularity, group=2 if granularity == "group" else None,
                                  input_shape=(2, 8, 8), strict=False, seed=seed,
                                  search_options={"steps": 4, "restarts": 1})
    dense = ticket.to_module(dtype=torch.float64)
    small = ticket.compact(torch.float64)
    x = torch.randn(5, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(small(x), dense(x), rtol=0, atol=1e-12)
    assert num_parameters(small) < ticket.num_params
    kinds = [d["type"] for d in small.description]
    assert kinds[0] == ("constant" if bias else "univariate") and "univariate_linear" in kinds
    # the univariate layers hold one weight per kept channel (one zero channel stands for a pair keeping none)
    kept = sum(li["kept_channels"] for li in ticket.provenance["layers"])
    firsts = sum(m.conv.weight.numel() if hasattr(m, "conv") else m.weight.numel()
                 for m, d in zip(small.layers, small.description) if d["type"].startswith("univariate"))
    assert firsts <= kept + len(ticket.provenance["layers"])


def test_compacted_directory_round_trips_with_linear_layers_and_biases(tmp_path):
    ticket = structured.construct(_whole(True), per_weight_eps=0.1, block_size=16, granularity="filter",
                                  input_shape=(2, 8, 8), strict=False, search_options={"steps": 4, "restarts": 1})
    small = ticket.compact()
    save_compact(small, tmp_path / "c", input_shape=ticket.spec.input_shape, provenance={})
    again = load_compact(tmp_path / "c")
    x = torch.randn(3, 2, 8, 8)
    assert torch.equal(again(x), small(x))


def test_compacted_directory_round_trips(tmp_path):
    ticket = _ticket("filter")
    small = ticket.compact()
    save_compact(small, tmp_path / "c", input_shape=ticket.spec.input_shape, provenance={})
    again = load_compact(tmp_path / "c")
    x = torch.rand(3, 2, 8, 8)
    assert torch.equal(again(x), small(x))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.txt").write_text("mine")
    with pytest.raises(InputError):
        save_compact(small, tmp_path / "other", input_shape=None, provenance={}, overwrite=True)
    assert (tmp_path / "other" / "thesis.txt").read_text() == "mine"


def test_compact_refuses_non_univariate_first_layer():
    ticket = _ticket("kernel")
    masks = dict(ticket.masks)
    m = masks["layers.0.weight"].clone()
    m[0, :, 0, 0] = True
    masks["layers.0.weight"] = m
    from strongticket.ticket import Ticket

    bad = Ticket(ticket.spec, ticket.distribution, ticket.seed, masks)
    with pytest.raises(InputError, match="univariate"):
        bad.compact()
