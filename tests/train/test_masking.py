"""Tests of masks: exact densities, ERK, the straight-through top-k, and masks that stay enforced in training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hypothesis import given
from hypothesis import strategies as st

from strongticket.errors import InputError
from strongticket.nets.zoo import build_model
from strongticket.train.masking import (
    MaskedModel,
    TopKStraightThrough,
    density_report,
    erk_densities,
    init_weights,
    mask_from_scores,
    prunable_names,
)


def _net(seed: int = 0, name: str = "lenet300100") -> torch.nn.Module:
    net = build_model(name, image_size=8, seed=0)
    init_weights(net, "default", torch.Generator().manual_seed(seed))
    return net


@given(st.lists(st.integers(1, 40), min_size=1, max_size=4), st.floats(0.01, 1.0),
       st.sampled_from(["global", "layerwise"]))
def test_mask_from_scores_keeps_the_requested_count(sizes: list[int], density: float, scope: str) -> None:
    g = torch.Generator().manual_seed(sum(sizes))
    scores = {f"t{i}": torch.rand(n, generator=g) for i, n in enumerate(sizes)}
    masks = mask_from_scores(scores, density, scope)
    if scope == "global":
        assert sum(int(m.sum()) for m in masks.values()) == max(1, round(density * sum(sizes)))
    else:
        assert [int(m.sum()) for m in masks.values()] == [max(1, round(density * n)) for n in sizes]


@given(st.floats(0.05, 0.95))
def test_global_mask_keeps_exactly_the_highest_scores(density: float) -> None:
    scores = {"a": torch.arange(10.0), "b": torch.arange(10.0, 20.0)}
    masks = mask_from_scores(scores, density)
    kept = torch.cat([scores["a"][masks["a"]], scores["b"][masks["b"]]])
    dropped = torch.cat([scores["a"][~masks["a"]], scores["b"][~masks["b"]]])
    assert dropped.numel() == 0 or kept.min() > dropped.max()


def test_density_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        mask_from_scores({"a": torch.rand(3)}, 0.0)


@given(st.floats(0.01, 1.0))
def test_erk_densities_match_the_overall_density(density: float) -> None:
    shapes = {"a": (300, 64), "b": (100, 300), "c": (10, 100)}
    dens = erk_densities(shapes, density)
    kept = sum(dens[n] * math.prod(s) for n, s in shapes.items())
    assert kept == pytest.approx(density * sum(math.prod(s) for s in shapes.values()), rel=1e-6)
    assert all(0 <= d <= 1 for d in dens.values())
    assert dens["c"] >= dens["b"]  # small layers keep more


def test_topk_straight_through_counts_and_passes_gradients() -> None:
    s = torch.rand(50, 20, generator=torch.Generator().manual_seed(0), requires_grad=True)
    m = TopKStraightThrough.apply(s, 0.3)
    assert int(m.sum()) == 300
    assert bool((s[m.bool()].min() > s[~m.bool()].max()))
    (m * torch.arange(1000.0).reshape(50, 20)).sum().backward()
    assert torch.equal(s.grad, torch.arange(1000.0).reshape(50, 20))


def test_prunable_names_follow_the_flags() -> None:
    net = _net()
    assert prunable_names(net) == ["1.weight", "3.weight", "5.weight"]
    assert prunable_names(net, prune_output=False) == ["1.weight", "3.weight"]
    assert prunable_names(net, prune_bias=True)[:2] == ["1.weight", "1.bias"]


def test_init_is_reproducible_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = _net(5), _net(5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    net = build_model("lenet300100", seed=0)
    init_weights(net, "signed_constant", torch.Generator().manual_seed(0))
    assert torch.allclose(net[1].weight.abs(), torch.full_like(net[1].weight, math.sqrt(2 / 784)))
    assert not torch.equal(_net(6)[1].weight, a[1].weight)
    torch.random.set_rng_state(before)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_pruned_weights_never_come_back_through_momentum_or_weight_decay(opt_name: str) -> None:
    net = _net()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    model = MaskedModel(net)
    opt = (torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3) if opt_name == "sgd"
           else torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-3))
    for _ in range(5):  # build up momentum / Adam moments before pruning
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    params = dict(net.named_parameters())
    masks = mask_from_scores({n: params[n].detach().abs() for n in prunable_names(net)}, 0.3, "layerwise")
    model.set_masks(masks, opt)
    kept_before = {n: params[n][masks[n]].detach().clone() for n in masks}
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for n, m in masks.items():
        assert bool((params[n][~m] == 0).all()), n
        assert bool((model.effective_state_dict()[n][~m] == 0).all())
        assert int((params[n] != 0).sum()) <= int(m.sum())
    assert all(not torch.equal(kept_before[n], params[n][masks[n]]) for n in masks)  # it did train


def test_masks_with_wrong_names_or_shapes_are_rejected() -> None:
    net = _net()
    with pytest.raises(InputError, match="not a tensor"):
        MaskedModel(net, {"9.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(InputError, match="shape"):
        MaskedModel(net, {"1.weight": torch.ones(3, dtype=torch.bool)})


def test_edge_popup_scores_train_while_weights_stay_frozen() -> None:
    net = _net()
    for p in net.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    scores = {n: torch.rand(dict(net.named_parameters())[n].shape) for n in prunable_names(net)}
    model = MaskedModel(net, scores=scores, score_density=0.5)
    opt = torch.optim.SGD(model.scores.parameters(), lr=0.5)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    m0 = model.masks
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert any(not torch.equal(m0[n], model.masks[n]) for n in m0)
    assert all(int(m.sum()) == round(0.5 * m.numel()) for m in model.masks.values())


def test_density_report_flags_collapsed_layers() -> None:
    rep = density_report({"a": torch.zeros(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)})
    assert rep["collapsed"] == ["a"] and rep["density"] == 0.5


def test_global_topk_score_rule_keeps_the_globally_largest_scores_and_passes_gradients() -> None:
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    # layer 0 holds all the large scores: a layer-wise rule would keep half of each layer, the global rule
    # keeps layer 0 almost whole and prunes layer 1 entirely
    scores = {"0.weight": torch.arange(1.0, 13.0).reshape(3, 4) + 100, "1.weight": -torch.arange(1.0, 7.0).reshape(2, 3)}
    model = MaskedModel(net, scores=scores, score_density=0.5, score_rule="global-topk")
    masks = model.masks
    assert int(masks["0.weight"].sum()) == 9 and int(masks["1.weight"].sum()) == 0
    model(torch.randn(5, 4)).sum().backward()
    assert all(s.grad is not None for s in model.scores.values())


def test_round_score_rule_keeps_scores_above_one_half_and_respects_a_frozen_mask() -> None:
    net = nn.Sequential(nn.Linear(2, 2, bias=False))
    scores = {"0.weight": torch.tensor([[0.9, 0.2], [0.6, 0.7]])}
    frozen = {"0.weight": torch.tensor([[True, True], [False, True]])}
    model = MaskedModel(net, masks=frozen, scores=scores, score_rule="round")
    assert model.masks["0.weight"].tolist() == [[True, False], [False, True]]


def test_unknown_score_rule_is_refused() -> None:
    with pytest.raises(InputError, match="score_rule must be one of topk, global-topk, round"):
        MaskedModel(nn.Linear(2, 2), score_rule="median")
