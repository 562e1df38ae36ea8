"""GEM-MINER: the freezing schedule, exact density, frozen weights that never return, scores kept in [0, 1],
the random control's per-layer densities, the strong ticket without fine-tuning, and resume after kills."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file

from strongticket.errors import InputError
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.methods import gem_miner
from strongticket.train.methods.gem_miner import (
    GemFreezing,
    active_counts,
    freeze_epochs,
    penalty_grad,
    random_masks_like,
    top_active,
)
from strongticket.train.run import train_run
from tests.train.test_resume import check_kills


def config(epochs: int = 4, density: float = 0.2, **prune) -> RunConfig:
    prune = {"gem_period": 1, **prune}
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=0.25),
                     optim=OptimConfig(epochs=epochs, lr=0.1, momentum=0.9),
                     prune=PruneConfig(method="gem-miner", density=density, **prune), seed=1)


def lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------ pure functions


@pytest.mark.parametrize("epochs,period,expected", [(10, 2, [2, 4, 6, 8]), (11, 2, [2, 4, 6, 8, 10]),
                                                    (150, 5, list(range(5, 150, 5))), (5, 5, []), (1, 1, [])])
def test_freezings_leave_at_least_one_epoch_of_search_after_the_last(epochs: int, period: int,
                                                                     expected: list[int]) -> None:
    assert freeze_epochs(epochs, period) == expected


@given(total=st.integers(1, 10**6), density=st.floats(1e-4, 1.0), k=st.integers(1, 40))
def test_active_counts_end_exactly_at_the_target_and_never_increase(total: int, density: float, k: int) -> None:
    counts = active_counts(total, density, k)
    assert len(counts) == k
    assert counts[-1] == max(1, round(density * total))
    assert all(a >= b for a, b in zip([total, *counts], counts))


def test_active_counts_follow_the_papers_geometric_rate() -> None:
    # r = 1 - exp(ln(d) / K): each freezing keeps the fraction d^(1/K) of the active weights
    counts = active_counts(100_000, 0.0372, 4)
    ratios = [b / a for a, b in zip([100_000, *counts], counts)]
    assert ratios == pytest.approx([0.0372 ** 0.25] * 4, rel=1e-3)


def test_top_active_never_keeps_a_frozen_entry_even_with_the_highest_score() -> None:
    scores = {"a": torch.tensor([0.9, 0.1, 0.5]), "b": torch.tensor([[1.0, 0.2], [0.3, 0.8]])}
    active = {"a": torch.tensor([True, True, True]), "b": torch.tensor([[False, True], [True, True]])}
    kept = top_active(scores, active, 3)
    assert kept["a"].tolist() == [True, False, True]
    assert kept["b"].tolist() == [[False, False], [False, True]]  # 1.0 is frozen: 0.8 is kept instead
    with pytest.raises(InputError, match=r"keep must be in \[0, 6\]"):
        top_active(scores, active, 7)


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_penalty_gradient_is_the_gradient_of_the_regulariser(kind: str) -> None:
    p = torch.tensor([0.0, 0.25, 0.7, 1.0], requires_grad=True)
    value = 3e-3 * (p.pow(2).sum() if kind == "l2" else p.abs().sum())
    (auto,) = torch.autograd.grad(value, p)
    assert torch.allclose(penalty_grad(p.detach(), 3e-3, kind), auto)


def test_random_control_masks_keep_the_same_count_in_every_tensor() -> None:
    found = {"w1": torch.rand(30, 20) > 0.8, "w2": torch.rand(10, 30) > 0.5, "w3": torch.zeros(4, 10, dtype=torch.bool)}
    a = random_masks_like(found, torch.Generator().manual_seed(3))
    b = random_masks_like(found, torch.Generator().manual_seed(3))
    for n in found:
        assert int(a[n].sum()) == int(found[n].sum())
        assert torch.equal(a[n], b[n])  # seeded
    assert not torch.equal(a["w1"], found["w1"])


# ------------------------------------------------------------------------------------------ runs


def test_run_reaches_the_density_exactly_at_the_last_freezing(tmp_path: Path) -> None:
    s = train_run(config(epochs=5, density=0.2, gem_period=2), tmp_path / "run", device="cpu")
    target = round(0.2 * s["prunable"])
    assert s["kept"] == target
    info = s["gem_miner"]
    assert info["freeze_epochs"] == [2, 4] and info["freezings"] == 2
    freezes = [x for x in lines(tmp_path / "run") if x["event"] == "gem_freeze"]
    assert [x["epoch"] for x in freezes] == [2, 4]
    assert [x["active"] for x in freezes] == active_counts(s["prunable"], 0.2, 2)
    assert freezes[-1]["active"] == target
    # every evaluation after the last freezing runs at (at most) the target density
    evals = [x for x in lines(tmp_path / "run") if x["event"] == "eval" and x["phase"] == "search"]
    assert all(x["density"] <= 0.2 + 1e-12 for x in evals if x["epoch"] >= 4)
    mask = load_file(str(tmp_path / "run" / "mask.safetensors"))
    assert sum(int(m.sum()) for m in mask.values()) == target


def test_without_a_freezing_the_mask_is_the_global_top_density_of_the_scores(tmp_path: Path) -> None:
    s = train_run(config(epochs=2, density=0.25, gem_period=5, gem_finetune=False), tmp_path / "run", device="cpu")
    assert s["gem_miner"]["freezings"] == 0 and s["gem_miner"]["freeze_epochs"] == []
    assert s["kept"] == round(0.25 * s["prunable"])
    assert not [x for x in lines(tmp_path / "run") if x["event"] == "gem_freeze"]


def test_frozen_weights_never_come_back_and_scores_stay_in_the_unit_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[dict, dict]] = []
    original = GemFreezing.on_step

    def spy(self, trainer):
        original(self, trainer)
        eff = self.model.effective_params()
        seen.append(({n: f.clone() for n, f in self.frozen_at.items()},
                     {n: (self.score(n).detach().clone(), eff[n].detach().clone()) for n in self.names}))

    monkeypatch.setattr(GemFreezing, "on_step", spy)
    s = train_run(config(epochs=4, density=0.1), tmp_path / "run", device="cpu")
    assert seen and s["gem_miner"]["freezings"] == 3
    ever_frozen: dict[str, torch.Tensor] = {}
    for frozen_at, tensors in seen:
        for n, (p, w) in tensors.items():
            assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
            frozen = frozen_at[n] > 0
            if n in ever_frozen:
                assert bool(frozen[ever_frozen[n]].all()), f"a frozen entry of {n} became active again"
            ever_frozen[n] = frozen
            assert bool((w[frozen] == 0).all()), f"a frozen weight of {n} reaches the forward"
    final = load_file(str(tmp_path / "run" / "mask.safetensors"))
    for n, m in final.items():
        assert not bool((m & ever_frozen[n]).any()), f"the final mask keeps a frozen entry of {n}"


def test_random_control_has_the_per_layer_densities_of_the_found_mask(tmp_path: Path) -> None:
    s = train_run(config(epochs=3, density=0.15), tmp_path / "run", device="cpu")
    masks = {x["phase"]: x for x in lines(tmp_path / "run") if x["event"] == "mask"}
    assert masks["random-control"]["layers"] == masks["final"]["layers"]
    assert masks["random-control"]["kept"] == s["kept"]
    assert set(s["phases"]) == {"search", "finetune", "random-control"}
    for key in ("strong_ticket_test_accuracy", "finetuned_test_accuracy", "random_control_test_accuracy"):
        assert 0.0 <= s[key] <= 1.0
    assert s["test_accuracy"] == s["finetuned_test_accuracy"]


def test_without_finetuning_the_run_is_the_strong_ticket_on_the_random_weights(tmp_path: Path) -> None:
    s = train_run(config(epochs=3, density=0.3, gem_finetune=False), tmp_path / "run", device="cpu")
    assert set(s["phases"]) == {"search"}
    assert s["test_accuracy"] == s["strong_ticket_test_accuracy"]
    assert s["kept"] == round(0.3 * s["prunable"])
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    mask = load_file(str(tmp_path / "run" / "mask.safetensors"))
    for n, m in mask.items():
        w = weights[n]
        sigma = math.sqrt(2.0 / w[0].numel())
        # kept weights are the signed constants, including those the rounding had switched off
        assert torch.allclose(w[m].abs(), torch.full_like(w[m], sigma))
        assert bool((w[~m] == 0).all())


@pytest.mark.slow  # about 35 s; the default run covers gem-miner kills in tests/train/test_resume.py
def test_resume_after_kills_between_a_freezing_and_its_checkpoint_is_identical(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # metrics lines of the search: freeze(1), eval(1), freeze(2), eval(2), eval(3); a kill right after a
    # "gem_freeze" line falls after the freezing record was written and before the epoch's checkpoint
    points = [("log", 1), ("log", 3), ("save", 2), ("save", 3), ("save", 4), ("log", -2)]
    check_kills(config(epochs=3, density=0.2), tmp_path, monkeypatch, points)


def test_a_resumed_search_keeps_the_random_weights_the_rounding_had_switched_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a strong regulariser pushes active scores below 0.5; a phase checkpoint stores fixed & rounded masks, and
    # loading it must not zero the random weights of active entries (they are in the final mask)
    cfg = config(epochs=4, density=0.3, gem_finetune=False, gem_reg=0.05)
    check_kills(cfg, tmp_path, monkeypatch, [("save", 3)])  # after the last freezing
    run = tmp_path / "save3"
    s = json.loads((run / "summary.json").read_text())
    assert s["gem_miner"]["rounded_out"] > 0
    weights = load_file(str(run / "model.safetensors"))
    for n, m in load_file(str(run / "mask.safetensors")).items():
        sigma = math.sqrt(2.0 / weights[n][0].numel())
        assert torch.allclose(weights[n][m].abs(), torch.full_like(weights[n][m], sigma)), n


def test_a_freezing_record_shorter_than_the_checkpoint_is_refused(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from strongticket.train.rundir import CheckpointError
    from tests.train.test_resume import Killed, kill_at

    run = tmp_path / "run"
    kill_at(monkeypatch, "save", 2)  # the search's checkpoint after epoch 2 (two freezings)
    with pytest.raises(Killed):
        train_run(config(epochs=4), run, device="cpu")
    monkeypatch.undo()
    (run / gem_miner.FREEZE_FILE).unlink()
    with pytest.raises(CheckpointError, match="freezing record .* missing"):
        train_run(config(epochs=4), run, device="cpu")


@pytest.mark.parametrize("change,message", [
    ({"prune": {"scope": "layerwise"}}, "prune.scope .*must be global, got layerwise"),
    ({"model": {"init_from": "somewhere"}}, "--init-from does not apply to --method gem-miner"),
])
def test_bad_input_is_refused_before_anything_is_written(change: dict, message: str, tmp_path: Path) -> None:
    cfg = config().with_updates(**change)
    with pytest.raises(InputError, match=message):
        train_run(cfg, tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ the phases' optimisers


def test_search_and_finetuning_train_at_their_own_rates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.train.test_gsm import record_optimizers

    made = record_optimizers(monkeypatch)
    s = train_run(config(epochs=2, gem_score_lr=0.3, gem_momentum=0.5, gem_finetune_lr=0.02), tmp_path / "run",
                  device="cpu")
    search, finetune, control = (o.param_groups for o in made)
    assert len(search) == 1 and search[0]["lr"] == pytest.approx(0.3, rel=1e-12) and search[0]["momentum"] == 0.5
    for groups in (finetune, control):  # the random control trains on the fine-tuning's schedule and rate
        assert len(groups) == 1 and groups[0]["lr"] == pytest.approx(0.02, rel=1e-12)
        assert groups[0]["momentum"] == 0.9
    info = s["gem_miner"]
    assert (info["search_lr"], info["search_momentum"], info["finetune_lr"]) == (0.3, 0.5, 0.02)


def test_unset_phase_rates_train_exactly_as_the_optim_section(tmp_path: Path) -> None:
    runs = {"default": config(epochs=2), "same": config(epochs=2, gem_score_lr=0.1, gem_momentum=0.9,
                                                        gem_finetune_lr=0.1),
            "other": config(epochs=2, gem_finetune_lr=0.01)}
    summaries = {k: train_run(c, tmp_path / k, device="cpu") for k, c in runs.items()}
    weights = {k: load_file(str(tmp_path / k / "model.safetensors")) for k in runs}
    assert all(torch.equal(weights["default"][n], weights["same"][n]) for n in weights["default"])
    assert summaries["default"]["random_control_test_accuracy"] == summaries["same"]["random_control_test_accuracy"]
    assert not all(torch.equal(weights["default"][n], weights["other"][n]) for n in weights["default"])
    # the search does not depend on the fine-tuning rate: the same strong ticket
    assert summaries["default"]["strong_ticket_test_accuracy"] == summaries["other"]["strong_ticket_test_accuracy"]


@pytest.mark.parametrize("change,message", [
    ({"prune": {"gem_score_lr": -1.0}}, r"^prune.gem_score_lr \(--gem-score-lr\) must be > 0, got -1.0$"),
    ({"prune": {"gem_finetune_lr": 0}}, r"^prune.gem_finetune_lr \(--gem-finetune-lr\) must be > 0, got 0$"),
    ({"prune": {"gem_momentum": -0.1}}, r"^prune.gem_momentum \(--gem-momentum\) must be in \[0, 1\), got -0.1$"),
    ({"prune": {"gem_momentum": 0.9}, "optim": {"optimizer": "adam"}},
     r"^prune.gem_momentum \(--gem-momentum\) sets an SGD momentum, but optim.optimizer .* is 'adam'.*got 0.9$"),
])
def test_bad_phase_settings_are_one_line_errors_before_writing(change: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=message):
        train_run(config().with_updates(**change), tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()
