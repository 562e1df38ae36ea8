"""Lottery Pools: candidate order, the validation split, greedy acceptance that never lowers validation accuracy,
BatchNorm re-estimation, exact density, the tickets kept per level, refusals and resume after a kill."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from torch import nn

from strongticket.errors import InputError
from strongticket.train import loop as loop_mod
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig, derive_seed
from strongticket.train.data import load_dataset
from strongticket.train.loop import evaluate
from strongticket.train.masking import MaskedModel
from strongticket.train.methods.lottery_pools import (
    Ticket,
    bn_refresher,
    candidate_levels,
    pool_tickets,
    reprune,
    validation_split,
)
from strongticket.train.run import train_run
from tests.train.test_resume import check_kills

# ------------------------------------------------------------------------------------------ pure parts


def test_candidates_alternate_below_and_above_the_target_nearest_first() -> None:
    assert candidate_levels(3, range(8), 6) == [2, 4, 1, 5, 0, 6]
    assert candidate_levels(3, range(8), 2) == [2, 4]


def test_in_one_trajectory_the_target_is_last_so_only_lower_levels_are_candidates() -> None:
    assert candidate_levels(5, range(6), 4) == [4, 3, 2, 1]
    assert candidate_levels(5, range(6), 10) == [4, 3, 2, 1, 0]
    assert candidate_levels(0, [0], 4) == []


def test_validation_split_is_disjoint_covering_and_seeded() -> None:
    train, val = validation_split(50, 12, torch.Generator().manual_seed(3))
    assert len(val) == 12 and len(train) == 38
    assert sorted(torch.cat([train, val]).tolist()) == list(range(50))
    again = validation_split(50, 12, torch.Generator().manual_seed(3))
    assert torch.equal(again[1], val)
    assert not torch.equal(validation_split(50, 12, torch.Generator().manual_seed(4))[1], val)


@pytest.mark.parametrize("n_val", [0, 50, 60])
def test_validation_split_must_leave_training_images(n_val: int) -> None:
    with pytest.raises(InputError, match=rf"pool_val \(--pool-val\) must be .* below the 50 training images, "
                                         rf"got {n_val}"):
        validation_split(50, n_val, torch.Generator().manual_seed(0))


def test_reprune_keeps_the_exact_count_by_magnitude() -> None:
    w = {"a": torch.tensor([3.0, -1.0, 0.5]), "b": torch.tensor([[-4.0, 0.1], [2.0, 0.0]]), "c": torch.ones(2)}
    out, masks = reprune(w, ["a", "b"], 3 / 7, "global")
    assert masks["a"].tolist() == [True, False, False] and masks["b"].tolist() == [[True, False], [True, False]]
    assert out["a"].tolist() == [3.0, 0.0, 0.0] and torch.equal(out["c"], w["c"])  # unprunable: untouched


# ------------------------------------------------------------------------------------------ acceptance


def linear_task(n: int = 200, seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """A linear classifier whose weights solve the task exactly: label = argmax of the true logits."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Linear(6, 3, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.randn(3, 6, generator=g))
    x = torch.randn(n, 6, generator=g)
    y = (x @ net.weight.detach().T).argmax(1)
    return net, x, y


def ticket(level: int, weights: torch.Tensor) -> Ticket:
    return Ticket(level, {"weight": weights.clone()}, {"weight": torch.ones_like(weights, dtype=torch.bool)})


def test_a_candidate_that_lowers_validation_accuracy_is_never_accepted() -> None:
    net, x, y = linear_task()
    w = net.weight.detach().clone()
    model = MaskedModel(net)
    score = lambda m: evaluate(m, x, y)["accuracy"]  # noqa: E731
    # the negated network: every interpolation with α >= 0.5 predicts worse (α = 0.5 is the zero network)
    out = pool_tickets(model, ticket(1, w), [ticket(0, -w)], [0.5, 0.7, 0.9], 1.0, "global", score)
    assert out.ticket_val_accuracy == 1.0 and out.val_accuracy == 1.0
    assert [t.accepted for t in out.trials] == [False] and out.trials[0].val_accuracy < 1.0
    assert torch.equal(out.weights["weight"], w) and torch.equal(model.net.weight.detach(), w)
    assert out.evaluations == 4 and out.bn_updates == 0


def test_a_candidate_that_raises_validation_accuracy_is_accepted() -> None:
    net, x, y = linear_task()
    good = net.weight.detach().clone()
    noisy = good + 3 * torch.randn(good.shape, generator=torch.Generator().manual_seed(1))
    model = MaskedModel(net)
    score = lambda m: evaluate(m, x, y)["accuracy"]  # noqa: E731
    out = pool_tickets(model, ticket(2, noisy), [ticket(1, good)], [0.5, 0.9], 1.0, "global", score)
    assert out.val_accuracy > out.ticket_val_accuracy
    assert [(t.level, t.alpha, t.accepted) for t in out.trials] == [(1, 0.9, True)]  # the best α is proposed
    assert torch.allclose(out.weights["weight"], 0.9 * good + 0.1 * noisy)
    assert score(model) == out.val_accuracy  # the model holds the pooled network


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_cand=st.integers(1, 4),
       alphas=st.lists(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]), min_size=1, max_size=3, unique=True),
       density=st.sampled_from([0.25, 0.5, 1.0]))
def test_accepted_steps_strictly_raise_validation_accuracy_and_the_density_is_exact(
        seed: int, n_cand: int, alphas: list[float], density: float) -> None:
    g = torch.Generator().manual_seed(seed)
    net = nn.Linear(4, 2, bias=False)
    model = MaskedModel(net)

    def score(m: MaskedModel) -> float:  # an arbitrary function of the masked weights, as an accuracy is
        return float(torch.sin(37.0 * (m.net.weight.detach() * m.masks["weight"]).sum()))

    target = ticket(n_cand, torch.randn(2, 4, generator=g))
    target = Ticket(target.level, *reprune(target.weights, ["weight"], density, "global"))
    cands = [ticket(v, torch.randn(2, 4, generator=g)) for v in range(n_cand)]
    out = pool_tickets(model, target, cands, alphas, density, "global", score)
    best = out.ticket_val_accuracy
    for t in out.trials:
        assert t.accepted == (t.val_accuracy > best)
        best = max(best, t.val_accuracy) if t.accepted else best
    assert out.val_accuracy == best >= out.ticket_val_accuracy
    assert score(model) == pytest.approx(out.val_accuracy, abs=1e-6)
    assert int(out.masks["weight"].sum()) == round(density * 8)
    assert out.evaluations == 1 + n_cand * len(alphas)


def test_batchnorm_statistics_are_re_estimated_for_every_trial() -> None:
    g = torch.Generator().manual_seed(0)

    def bn_net() -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 3))

    net = bn_net()
    data = load_dataset("digits").subset(64, 32, seed=0)
    names = ["0.weight", "3.weight"]
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    other = {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()) for k, v in sd.items()}
    target = Ticket(1, *reprune(sd, names, 0.5, "global"))
    candidate = Ticket(0, other, {n: torch.ones_like(other[n], dtype=torch.bool) for n in names})
    scored: list[torch.Tensor] = []

    def score(m: MaskedModel) -> float:  # records the statistics each evaluation runs with; a constant score
        scored.append(m.net[1].running_mean.clone())
        return 1.0

    model = MaskedModel(net)
    out = pool_tickets(model, target, [candidate], [0.5], 0.5, "global", score, bn_refresher(data, 16))
    assert out.bn_updates == 1 and len(scored) == 2
    # the trial ran with the statistics of a fresh pass over the training images under the trial's weights
    trial, _ = reprune({k: (0.5 * other[k] + 0.5 * v) if v.is_floating_point() else v
                        for k, v in target.weights.items()}, names, 0.5, "global")
    fresh = MaskedModel(bn_net())
    fresh.net.load_state_dict(trial)
    torch.optim.swa_utils.update_bn([data.train_x], fresh)
    assert torch.allclose(scored[1], fresh.net[1].running_mean, atol=1e-6)
    assert not torch.allclose(scored[1], trial["1.running_mean"])  # not the interpolated statistics
    # a tie is no improvement: the model is back at the target ticket, statistics included
    assert not out.trials[0].accepted
    assert torch.equal(model.net[1].running_mean, target.weights["1.running_mean"])


# ------------------------------------------------------------------------------------------ runs


def config(**prune) -> RunConfig:
    prune = {"density": 0.3, "rate": 0.4, "pool_val": 100, "pool_alphas": (0.3, 0.6), **prune}
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=0.25),
                     optim=OptimConfig(epochs=2, lr=0.05, momentum=0.9),
                     prune=PruneConfig(method="lottery-pools", **prune), seed=1)


def test_lottery_pools_reaches_its_density_exactly_and_keeps_every_level(tmp_path: Path) -> None:
    s = train_run(config(), tmp_path / "run", device="cpu")
    assert s["kept"] == round(0.3 * s["prunable"])
    lp = s["lottery_pools"]
    # densities 0.6, 0.36, 0.3: three rounds, so the target is level 3 and the candidates 2, 1, 0
    assert lp["target_level"] == 3 and lp["candidates"] == [2, 1, 0]
    assert lp["evaluations"] == 1 + 3 * 2 and lp["bn_updates"] == 0 and lp["val_images"] == 100
    assert lp["pooled_val_accuracy"] >= lp["ticket_val_accuracy"]
    assert s["test_accuracy"] == lp["pooled_test_accuracy"]
    assert s["phases"]["pool"]["steps"] == 0 and s["phases"]["pool"]["evaluations"] == 7
    run = tmp_path / "run"
    masks = load_file(str(run / "mask.safetensors"))
    weights = load_file(str(run / "model.safetensors"))
    for name, m in masks.items():
        assert bool((weights[name][~m.bool()] == 0).all())
    for level in range(4):
        t = load_file(str(run / "tickets" / f"level{level}.safetensors"))
        kept = sum(int(v.sum()) for k, v in t.items() if k.startswith("mask."))
        assert kept == round([1.0, 0.6, 0.36, 0.3][level] * s["prunable"])
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    trials = [x for x in lines if x["event"] == "pool_trial"]
    assert [t["level"] for t in trials] == [2, 1, 0]
    assert [t["level"] for t in trials if t["accepted"]] == lp["accepted_levels"]


def test_no_training_step_sees_a_validation_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.Tensor] = []
    original = loop_mod.Trainer.__post_init__

    def record(self) -> None:
        seen.append(self.data.train_x)
        original(self)

    monkeypatch.setattr(loop_mod.Trainer, "__post_init__", record)
    cfg = config()
    train_run(cfg, tmp_path / "run", device="cpu")
    data = load_dataset("digits").subset(384, 100, seed=derive_seed(cfg.seed, "subset"))
    train_idx, val_idx = validation_split(384, 100, torch.Generator().manual_seed(derive_seed(cfg.seed, "pool-val")))
    assert len(seen) == 4  # round 0 (dense) and three pruning rounds
    for x in seen:
        assert torch.equal(x, data.train_x[train_idx])
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())


@pytest.mark.parametrize("prune,match", [
    ({"pool_val": 384}, r"pool_val \(--pool-val\) must be below the 384 training images .* got 384"),
    ({"density": 1.0}, r"lottery-pools needs a density below 1 \(--density\).* got 1.0"),
    ({"pool_alphas": ()}, r"pool_alphas \(--pool-alphas\) must hold at least one coefficient"),
])
def test_bad_settings_are_refused_before_anything_is_written(prune: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=match):
        train_run(config(**prune), tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("train_subset,where", [(None, "the digits training set"),
                                                 (5000, "data.train_subset")])  # a subset above the 1437 images
def test_a_validation_split_larger_than_the_training_data_is_refused_before_anything_is_written(
        train_subset: int | None, where: str, tmp_path: Path) -> None:
    cfg = config(pool_val=1437).with_updates(data={"train_subset": train_subset})
    if train_subset is None:
        cfg = replace(cfg, data=replace(cfg.data, train_subset=None))
    with pytest.raises(InputError, match=rf"^prune.pool_val \(--pool-val\) must be below the 1437 training images "
                                         rf"of {where} \(at least one must remain for training\), got 1437$"):
        train_run(cfg, tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_batchnorm_model_pools_with_re_estimated_statistics(tmp_path: Path) -> None:
    cfg = RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=256, test_subset=64),
                    model=ModelConfig(model="resnet20", width=0.25), optim=OptimConfig(epochs=1, lr=0.05),
                    prune=PruneConfig(method="lottery-pools", density=0.5, rate=0.3, pool_val=64,
                                      pool_alphas=(0.5,), pool_candidates=2), seed=0)
    s = train_run(cfg, tmp_path / "run", device="cpu")
    assert s["kept"] == round(0.5 * s["prunable"])
    assert s["lottery_pools"]["bn_updates"] == 2 and s["lottery_pools"]["evaluations"] == 3


def test_resume_after_a_kill_gives_the_identical_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kills: inside the trajectory (after round 1's mid checkpoint), between levels, during the pooling's lines
    check_kills(config(), tmp_path, monkeypatch, [("save", 3), ("save", 6), ("log", -3), ("log", -1)])
