"""Early-Bird tickets: the stopping rule on constructed mask sequences, exact densities, pruned weights that stay
zero, the channel variant's BatchNorm bookkeeping, and resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from strongticket.errors import InputError
from strongticket.nets.zoo import build_model
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.methods.early_bird import bn_producers, channel_mask, early_bird_drawn, mask_distance
from strongticket.train.run import train_run
from strongticket.train.rundir import RunDir
from tests.train.test_resume import check_kills


def prefix_mask(k: int, n: int = 100) -> dict[str, torch.Tensor]:
    """A mask keeping the first ``k`` of ``n`` entries: the distance between two is ``|k - k'| / n``."""
    return {"w": torch.arange(n) < k}


def first_draw(ks: list[int], threshold: float = 0.1, window: int = 5) -> int | None:
    """Feed the masks one per epoch, as the search does; return the epoch at which the rule first fires."""
    fifo: list[dict[str, torch.Tensor]] = []
    for epoch, k in enumerate(ks):
        fifo = [*fifo, prefix_mask(k)][-window:]
        if early_bird_drawn(fifo, threshold, window):
            return epoch
    return None


def test_mask_distance_is_the_fraction_of_differing_entries() -> None:
    assert mask_distance(prefix_mask(70), prefix_mask(74)) == pytest.approx(0.04)
    assert mask_distance(prefix_mask(30), prefix_mask(30)) == 0.0
    with pytest.raises(InputError, match="different tensors"):
        mask_distance({"a": torch.ones(3, dtype=torch.bool)}, {"b": torch.ones(3, dtype=torch.bool)})


def test_stopping_rule_fires_on_the_first_stable_window_and_not_before() -> None:
    # large moves, then steps of one entry: the window 70..74 (epochs 2..6) is the first whose
    # every distance to the newest is below 0.1; the window 40..73 (epochs 1..5) is not
    assert first_draw([10, 40, 70, 71, 72, 73, 74, 75]) == 6


def test_stopping_rule_compares_the_newest_with_every_older_mask_not_only_its_neighbour() -> None:
    # neighbours differ by 0.03 but the drift over the window is 0.12: never drawn
    assert first_draw([70, 73, 76, 79, 82, 85, 88, 91]) is None
    # identical masks, but fewer than the window: never drawn
    assert first_draw([50, 50, 50, 50]) is None
    assert first_draw([50, 50, 50, 50, 50]) == 4


def test_stopping_rule_needs_distances_strictly_below_the_threshold() -> None:
    assert first_draw([60, 60, 60, 60, 70]) is None  # distance exactly 0.1
    assert first_draw([60, 60, 60, 60, 69]) == 4


def test_batchnorm_producers_of_resnet20_include_the_shortcuts() -> None:
    net = build_model("resnet20", num_classes=10, in_channels=1, image_size=8, width=0.25, seed=0)
    prod = bn_producers(net, (1, 8, 8), torch.device("cpu"))
    bns = [n for n, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert sorted(prod) == sorted(bns)
    for bn, conv in prod.items():
        if bn.endswith("shortcut.1"):
            assert conv == bn[:-1] + "0"
        elif bn.endswith("bn1") or bn.endswith("bn2"):
            assert conv == bn[:-3] + "conv" + bn[-1]


def test_channel_mask_keeps_the_largest_batchnorm_scales_over_all_layers() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 1), torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 2, 1),
                              torch.nn.BatchNorm2d(2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([0.5, -2.0, 0.1]))
        net[3].weight.copy_(torch.tensor([-0.3, 1.0]))
    m = channel_mask(net, ["1", "3"], 0.6)  # 3 of 5 channels: |γ| = 2.0, 1.0, 0.5
    assert m["1"].tolist() == [True, True, False] and m["3"].tolist() == [False, True]
    assert bn_producers(net, (1, 4, 4), torch.device("cpu")) == {"1": "0", "3": "2"}


def config(model: str = "fc2", epochs: int = 8, **prune) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model=model, width=0.25),
                     optim=OptimConfig(epochs=epochs, lr=0.05, momentum=0.9),
                     prune=PruneConfig(method="early-bird", **prune), seed=1)


def test_magnitude_variant_reaches_its_density_exactly_and_pruned_weights_stay_zero(tmp_path: Path) -> None:
    s = train_run(config(density=0.3, eb_variant="magnitude"), tmp_path / "run", device="cpu")
    assert s["kept"] == round(0.3 * s["prunable"])
    eb = s["early_bird"]
    assert eb["drawn"] and 4 <= eb["drawn_epoch"] <= eb["search_cap"] and max(eb["distances"]) < 0.1
    # the ticket trains from the draw on: the schedule resumes at the draw epoch
    steps_per_epoch = 3
    assert s["phases"]["search"]["step"] == eb["drawn_epoch"] * steps_per_epoch
    assert s["phases"]["train"]["step"] == 8 * steps_per_epoch
    masks = load_file(str(tmp_path / "run" / "mask.safetensors"))
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    for name, m in masks.items():
        assert bool((weights[name][~m.bool()] == 0).all())
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines if x["event"] == "early_bird"] == list(range(eb["drawn_epoch"] + 1))


def test_channel_variant_keeps_exactly_its_channels_and_zeroes_their_rows(tmp_path: Path) -> None:
    s = train_run(config("resnet20", epochs=4, density=0.5, eb_window=2), tmp_path / "run", device="cpu")
    eb = s["early_bird"]
    assert eb["variant"] == "channel" and eb["channel_density"] == 0.5
    masks = {k: v.bool() for k, v in load_file(str(tmp_path / "run" / "mask.safetensors")).items()}
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    net = build_model("resnet20", num_classes=10, in_channels=1, image_size=8, width=0.25, seed=0)
    prod = bn_producers(net, (1, 8, 8), torch.device("cpu"))
    channels = sum(net.get_submodule(bn).num_features for bn in prod)
    # the channel mask the ticket was drawn with, as the search recorded it
    fifo = load_file(str(tmp_path / "run" / "checkpoints" / "early_bird.safetensors"))
    drawn = {k.split("/", 1)[1]: v for k, v in fifo.items() if k.split("/", 1)[0] == str(eb["drawn_epoch"])}
    dropped = 0
    for bn, conv in prod.items():
        m = masks[f"{conv}.weight"]
        rows = m.flatten(1).all(1)
        assert bool((rows | ~m.flatten(1).any(1)).all())  # a channel is kept or dropped whole
        assert torch.equal(rows, drawn[bn].bool())
        dropped += int((~rows).sum())
        assert bool((weights[f"{conv}.weight"][~rows] == 0).all())
    assert dropped == channels // 2
    assert bool(masks["fc.weight"].all())  # the classifier feeds no BatchNorm: kept whole


def test_a_search_without_a_draw_takes_the_mask_at_its_end_and_says_so(tmp_path: Path) -> None:
    s = train_run(config(density=0.3, eb_variant="magnitude", eb_threshold=1e-9), tmp_path / "run", device="cpu")
    eb = s["early_bird"]
    assert not eb["drawn"] and eb["drawn_epoch"] == eb["search_cap"] == 4
    assert "no Early-Bird ticket" in eb["note"]
    assert s["kept"] == round(0.3 * s["prunable"])


def test_channel_variant_on_a_model_without_batchnorm_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="eb_variant=channel .* needs a model with BatchNorm, got fc2") as info:
        train_run(config(density=0.3, eb_variant="channel"), tmp_path / "run", device="cpu")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()  # refused before the run directory (config.json) is written


@pytest.mark.parametrize("variant,model", [("magnitude", "fc2"),
                                           pytest.param("channel", "resnet20", marks=pytest.mark.slow)])
def test_resume_after_a_kill_gives_the_identical_run(variant: str, model: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # kills: inside the search (after a mid-search checkpoint), right after an early_bird line (the FIFO not
    # yet saved for that epoch), inside the training of the ticket, and (fc2) near its end
    extra = {"eb_window": 2} if variant == "channel" else {}
    cfg = config(model, epochs=4 if variant == "channel" else 8, density=0.4, eb_variant=variant, **extra)
    points = ([("save", 1), ("log", 3), ("save", 3)] if variant == "channel"  # a 2-epoch search, 2 of training
              else [("save", 2), ("log", 4), ("save", 5), ("log", -1)])
    check_kills(cfg, tmp_path, monkeypatch, points)


def test_channel_search_applies_the_network_slimming_l1_term_to_batchnorm_scales(tmp_path: Path) -> None:
    def scales(l1: float) -> float:
        train_run(config("resnet20", epochs=2, density=0.5, eb_window=2, eb_l1=l1), tmp_path / str(l1), device="cpu")
        tensors, _ = RunDir(tmp_path / str(l1)).load_checkpoint("search")
        return sum(float(v.abs().sum()) for k, v in tensors.items() if k.startswith("net.") and "bn" in k
                   and k.endswith(".weight"))

    # one search epoch at lr 0.05: an L1 coefficient of 0.05 shrinks every |γ| by about 3 · 0.05 · 0.05
    assert scales(0.05) < scales(0.0) - 0.001


def test_resuming_a_search_whose_record_is_missing_is_a_clear_error(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from strongticket.train.rundir import CheckpointError
    from tests.train.test_resume import Killed, kill_at

    cfg = config(density=0.3, eb_variant="magnitude")
    with monkeypatch.context() as m:
        kill_at(m, "save", 2)  # inside the search, after its second checkpoint
        with pytest.raises(Killed):
            train_run(cfg, tmp_path / "run", device="cpu")
    (tmp_path / "run" / "checkpoints" / "early_bird.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lacks the mask of epoch 2") as info:
        train_run(cfg, tmp_path / "run", device="cpu")
    assert "\n" not in str(info.value)
