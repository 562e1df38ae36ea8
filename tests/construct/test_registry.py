"""The construction registry: lookup by name, unused options refused, the same ticket as a direct call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strongticket.construct import CONSTRUCTIONS, build, check_options, construction, malach, pensia
from strongticket.errors import InputError


def _target() -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) - 0.5)
    return m


def test_every_entry_is_complete_and_named_by_its_key():
    assert set(CONSTRUCTIONS) >= {"pensia", "malach", "cnn2l"}
    for name, entry in CONSTRUCTIONS.items():
        assert entry.name == name and callable(entry.construct) and entry.paper and entry.summary
        assert isinstance(entry.options, frozenset) and "seed" in entry.options


def test_unknown_construction_lists_the_names():
    with pytest.raises(InputError, match=r"--method must be one of \[.*'malach', 'pensia'.*\], got 'nope'"):
        construction("nope")


@pytest.mark.parametrize("option, value", [("solver", "exact"), ("objective", "sparsest"), ("time_limit", 1.0)])
def test_malach_refuses_the_subset_sum_options_by_flag(option, value):
    flag = "--" + option.replace("_", "-")
    with pytest.raises(InputError, match=f"^{flag} does not apply to --method malach.*used by --method .*pensia"):
        build("malach", _target(), per_weight_eps=0.1, samples=6, **{option: value})


def test_eps_and_per_weight_eps_together_are_refused():
    with pytest.raises(InputError, match="--eps .* or --per-weight-eps .*not both"):
        check_options("pensia", {"eps": 0.1, "per_weight_eps": 0.01})


@pytest.mark.parametrize("options, message", [
    ({"solver": "foo"}, r"--solver must be 'auto' or one of \[.*'exact'.*\], got 'foo'"),
    ({"objective": "fastest"}, r"--objective must be one of \['min_error', 'sparsest'\], got 'fastest'"),
])
def test_bad_subset_sum_options_are_named(options, message):
    with pytest.raises(InputError, match=message):
        check_options("pensia", options)


@pytest.mark.parametrize("name, module", [("pensia", pensia), ("malach", malach)])
def test_build_gives_the_ticket_of_a_direct_call(name, module):
    kw = {"per_weight_eps": 0.1, "samples": 6, "seed": 3, "strict": False}
    got, direct = build(name, _target(), **kw), module.construct(_target(), **kw)
    assert got.provenance["method"] == direct.provenance["method"] == module.METHOD
    assert got.spec == direct.spec and got.seed == direct.seed and got.masks.keys() == direct.masks.keys()
    assert all(torch.equal(got.masks[k], direct.masks[k]) for k in got.masks)


def test_per_layer_tolerances_are_accepted_where_the_construction_takes_them_and_each_is_checked():
    from strongticket.construct import check_options
    from strongticket.errors import InputError

    check_options("cnn2l", {"per_weight_eps": [0.01, 0.02]})  # one per target layer
    with pytest.raises(InputError, match=r"--per-weight-eps must be in \(0, 1\), got 2.0"):
        check_options("cnn2l", {"per_weight_eps": [0.01, 2.0]})
    with pytest.raises(InputError, match="takes one value for --method pensia"):
        check_options("pensia", {"per_weight_eps": [0.01]})


@pytest.mark.parametrize("options, message", [
    ({"distribution": "gaussian"}, r"^--distribution must be one of \[.*'uniform', 'target-range'\], got 'gaussian'$"),
    ({"distribution": {"name": "uniform"}}, r"^--distribution must be one of \[.*\], got \{'name': 'uniform'\}$"),
    ({"nonneg_input": "yes"}, r"^--nonneg-input/--signed-input must be true or false, got 'yes'$"),
    ({"wider_pool": 1}, r"^--wider-pool must be true or false, got 1$"),
    ({"strict": "no"}, r"^--strict must be true or false, got 'no'$"),
])
def test_bad_law_names_and_switches_are_refused_before_any_work(options, message):
    with pytest.raises(InputError, match=message):
        check_options("pensia", options)


def test_a_law_by_name_or_as_a_distribution_and_boolean_switches_are_accepted():
    from strongticket.nets.distributions import WeightDistribution

    for law in ("uniform", "target-range", "normal", WeightDistribution.uniform(-0.5, 0.5)):
        check_options("pensia", {"distribution": law, "nonneg_input": False, "wider_pool": True, "strict": False})
    check_options("lplus1", {"distribution": "target-range", "reference_first_layer": True})
