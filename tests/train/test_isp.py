"""Instant Soup Pruning: the vote rules on hand-made masks, exact densities, pruned weights that stay zero,
staging that runs out of schedule, and resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from strongticket.errors import InputError
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.methods.isp import vote_masks, vote_then_magnitude
from strongticket.train.run import train_run
from tests.train.test_resume import check_kills


def masks_from_rows(*rows: str) -> list[dict[str, torch.Tensor]]:
    """One mask per string, ``1`` = kept: ``"1100"`` keeps the first two of four entries of tensor ``w``."""
    return [{"w": torch.tensor([c == "1" for c in r])} for r in rows]


# entry i is kept by i of the three masks (0, 1, 2, 3 votes)
THREE = masks_from_rows("0111", "0011", "0001")


@pytest.mark.parametrize("rule,kept", [("at-least-one", [False, True, True, True]),
                                       ("majority", [False, False, True, True]),
                                       ("all", [False, False, False, True])])
def test_vote_keeps_the_entries_with_enough_votes(rule: str, kept: list[bool]) -> None:
    assert vote_masks(THREE, rule)["w"].tolist() == kept


def test_majority_is_strict_so_a_tie_is_pruned() -> None:
    four = masks_from_rows("1100", "1100", "1010", "0000")  # votes 3, 2, 1, 0
    assert vote_masks(four, "majority")["w"].tolist() == [True, False, False, False]
    assert vote_masks(four)["w"].tolist() == [True, False, False, False]  # majority is the default


def test_one_mask_is_its_own_vote_under_every_rule() -> None:
    (one,) = masks_from_rows("1010")
    for rule in ["at-least-one", "majority", "all"]:
        assert torch.equal(vote_masks([one], rule)["w"], one["w"])


def test_vote_rejects_unknown_rules_and_mismatched_masks() -> None:
    with pytest.raises(InputError, match="vote rule must be one of majority, at-least-one, all, got 'or'"):
        vote_masks(THREE, "or")
    with pytest.raises(InputError, match="different tensors"):
        vote_masks([{"a": torch.ones(2, dtype=torch.bool)}, {"b": torch.ones(2, dtype=torch.bool)}])
    with pytest.raises(InputError, match="at least one mask"):
        vote_masks([])


def test_overshoot_ranking_puts_votes_before_magnitude_and_keeps_pruned_entries_out() -> None:
    net = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[9.0, 0.1, 5.0, 7.0]]))
    previous = {"weight": torch.tensor([[True, True, True, False]])}
    votes = [{"weight": torch.tensor([[False, True, True, False]])},
             {"weight": torch.tensor([[True, True, False, False]])}]
    s = vote_then_magnitude(votes, net, ["weight"], previous)["weight"][0]
    # entry 1 has two votes and beats entry 0 (one vote, |w| 9); entry 0 beats entry 2 (one vote, |w| 5)
    assert s[1] > s[0] > s[2] and s[3] == float("-inf")


def config(epochs: int = 5, **prune) -> RunConfig:
    prune = {"isp_step": 0.2, "isp_copy_fraction": 0.2, **prune}
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=0.25),
                     optim=OptimConfig(epochs=epochs, lr=0.05, momentum=0.9),
                     prune=PruneConfig(method="isp", **prune), seed=1)


@pytest.mark.parametrize("vote", ["majority", "at-least-one", "all"])
def test_isp_reaches_its_density_exactly_and_pruned_weights_stay_zero(vote: str, tmp_path: Path) -> None:
    s = train_run(config(density=0.3, isp_vote=vote), tmp_path / "run", device="cpu")
    assert s["kept"] == round(0.3 * s["prunable"])
    assert "note" not in s["isp"] and s["isp"]["staged_density"] - 0.3 <= 0.05
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    stages = [x for x in lines if x["event"] == "isp_stage"]
    assert len(stages) == s["isp"]["stages"] >= 2
    densities = [x["density"] for x in stages]
    assert densities == sorted(densities, reverse=True) and densities[-1] >= 0.3
    masks = load_file(str(tmp_path / "run" / "mask.safetensors"))
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    for name, m in masks.items():
        assert bool((weights[name][~m.bool()] == 0).all())
    # the stages and the fine-tuning share one schedule of 5 epochs of 3 steps
    assert s["phases"]["finetune"]["step"] == 15
    # the copies' training counts in the cost: 5 copies x 1 step (77 images, batch 128) per stage
    copies = s["phases"]["isp-copies"]
    assert copies["steps"] == s["isp"]["copy_steps"] == 5 * len(stages)
    assert s["wall_time_s"] >= copies["seconds"] > 0


def test_staging_that_runs_out_of_schedule_one_shots_the_rest_and_says_so(tmp_path: Path) -> None:
    s = train_run(config(epochs=2, density=0.1, isp_step=0.1), tmp_path / "run", device="cpu")
    assert s["kept"] == round(0.1 * s["prunable"])
    assert "no step of the schedule" in s["isp"]["note"]


def test_copies_whose_shares_overlap_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"isp_copies x isp_copy_fraction .* must be <= 1 .* got 5 x 0.3"):
        train_run(config(density=0.3, isp_copy_fraction=0.3), tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


def test_resume_after_a_kill_gives_the_identical_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kills: after the first stage's checkpoint, after an isp_stage line, mid fine-tuning, near the end
    check_kills(config(density=0.3), tmp_path, monkeypatch, [("save", 1), ("log", 3), ("save", 7), ("log", -1)])
