"""Ticket transfer (``--method transfer --mask-from RUN``): the trained mask is the source's (or its per-layer
shuffle), pruned weights stay zero, the starting weights are bit for bit the source's, a class-count change
replaces the classifier, a resumed run is identical, and bad sources are refused before anything is written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from strongticket.errors import InputError
from strongticket.train import context as ctx_mod
from strongticket.train import run as run_mod
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.methods.transfer import random_mask, read_source, shuffle_within_layers, source_start_weights
from strongticket.train.rundir import CheckpointError
from strongticket.train.run import train_run
from tests.train.test_resume import Killed, check_kills, kill_at

DIGITS_SHAPE = (1, 8, 8)


def config(method: str = "transfer", density: float = 0.3, *, seed: int = 1, optimizer: str = "sgd",
           width: float = 0.25, epochs: int = 2, **prune) -> RunConfig:
    lr = 0.05 if optimizer == "sgd" else 0.01
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=width),
                     optim=OptimConfig(epochs=epochs, lr=lr, momentum=0.9 if optimizer == "sgd" else 0.0,
                                       optimizer=optimizer),
                     prune=PruneConfig(method=method, density=density, **prune), seed=seed)


def capture_init(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, torch.Tensor]]:
    """Record the state_dict of every network ``ctx.new_net("init")`` returns, as it is returned."""
    seen: list[dict[str, torch.Tensor]] = []
    original = ctx_mod.RunContext.new_net

    def wrapped(self, stream: str = "init"):
        net = original(self, stream)
        if stream == "init":
            seen.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return net

    monkeypatch.setattr(ctx_mod.RunContext, "new_net", wrapped)
    return seen


def capture_start(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, torch.Tensor]]:
    """Record the network's weights when each phase starts training (before its first step)."""
    seen: dict[str, dict[str, torch.Tensor]] = {}
    original = ctx_mod.RunContext.train

    def wrapped(self, phase, model, **kwargs):
        seen[phase] = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
        return original(self, phase, model, **kwargs)

    monkeypatch.setattr(ctx_mod.RunContext, "train", wrapped)
    return seen


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An IMP ticket at density 0.3 drawn on digits with SGD, its initial weights saved beside it."""
    path = tmp_path_factory.mktemp("source")
    with pytest.MonkeyPatch.context() as m:
        seen = capture_init(m)
        train_run(config("imp", rate=0.5), path / "run", device="cpu")
    save_file(seen[0], str(path / "init.safetensors"))
    return path / "run"


def test_transferred_mask_is_the_source_mask_and_pruned_weights_stay_zero(source: Path, tmp_path: Path) -> None:
    s = train_run(config(optimizer="adam", mask_from=str(source)), tmp_path / "t", device="cpu")
    src_masks = load_file(str(source / "mask.safetensors"))
    masks = load_file(str(tmp_path / "t" / "mask.safetensors"))
    assert set(masks) == set(src_masks)
    for name, m in masks.items():
        assert torch.equal(m.bool(), src_masks[name].bool()), name
    weights = load_file(str(tmp_path / "t" / "model.safetensors"))
    for name, m in masks.items():
        assert bool((weights[name][~m.bool()] == 0).all()) and bool((weights[name][m.bool()] != 0).any())
    src = json.loads((source / "summary.json").read_text())
    assert s["kept"] == src["kept"] and s["density"] == src["density"]
    assert s["transfer_weights"] == "source-init" and s["transfer_source_method"] == "imp"
    assert s["transfer_source_optimizer"] == "sgd" and s["transfer_output"] == "unchanged"
    assert s["transfer_replaced"] == [] and s["transfer_shuffle"] is False


def test_shuffled_control_keeps_each_layers_count_and_moves_the_mask(source: Path, tmp_path: Path) -> None:
    train_run(config(mask_from=str(source), transfer_shuffle=True), tmp_path / "t", device="cpu")
    src_masks = load_file(str(source / "mask.safetensors"))
    masks = load_file(str(tmp_path / "t" / "mask.safetensors"))
    for name, m in masks.items():
        assert int(m.sum()) == int(src_masks[name].sum()), name
        assert not torch.equal(m.bool(), src_masks[name].bool()), name
    weights = load_file(str(tmp_path / "t" / "model.safetensors"))
    for name, m in masks.items():
        assert bool((weights[name][~m.bool()] == 0).all())


def test_source_weights_are_bit_identical_to_the_source_runs_initial_weights(source: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    init = load_file(str(source.parent / "init.safetensors"))
    regenerated = source_start_weights(read_source(source), DIGITS_SHAPE)
    assert set(regenerated) == set(init)
    for k, v in init.items():
        assert torch.equal(regenerated[k], v), k
    # the transfer run (another seed, another optimiser) starts its surviving weights there
    starts = capture_start(monkeypatch)
    train_run(config(seed=7, optimizer="adam", mask_from=str(source)), tmp_path / "t", device="cpu")
    masks = load_file(str(source / "mask.safetensors"))
    for k, v in init.items():
        expected = v * masks[k] if k in masks else v
        assert torch.equal(starts["train"][k], expected), k


def test_own_init_weights_are_this_runs_initialisation(source: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    inits = capture_init(monkeypatch)
    starts = capture_start(monkeypatch)
    s = train_run(config(seed=7, mask_from=str(source), transfer_weights="init"), tmp_path / "t", device="cpu")
    masks = load_file(str(source / "mask.safetensors"))
    src_init = load_file(str(source.parent / "init.safetensors"))
    for k, v in inits[0].items():
        expected = v * masks[k] if k in masks else v
        assert torch.equal(starts["train"][k], expected), k
    assert not torch.equal(inits[0]["1.weight"], src_init["1.weight"])  # another seed: another init
    assert s["transfer_weights"] == "own-init"


def test_a_rewound_source_starts_from_its_rewinding_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train_run(config("imp-rewind", rate=0.5, rewind_step=2), tmp_path / "src", device="cpu")
    rewind = load_file(str(tmp_path / "src" / "checkpoints" / "rewind.safetensors"))
    starts = capture_start(monkeypatch)
    s = train_run(config(mask_from=str(tmp_path / "src")), tmp_path / "t", device="cpu")
    masks = load_file(str(tmp_path / "src" / "mask.safetensors"))
    for k, v in rewind.items():
        assert torch.equal(starts["train"][k], v * masks[k] if k in masks else v), k
    assert s["transfer_weights"] == "source-rewind"
    assert s["phases"]["train"]["step"] == 2 * 3  # from step 0: the whole schedule, 2 epochs of 3 steps


def test_an_edge_popup_source_regenerates_its_random_network(tmp_path: Path) -> None:
    train_run(config("edge-popup", 0.5), tmp_path / "src", device="cpu")
    start = source_start_weights(read_source(tmp_path / "src"), DIGITS_SHAPE)
    masks = load_file(str(tmp_path / "src" / "mask.safetensors"))
    final = load_file(str(tmp_path / "src" / "model.safetensors"))  # edge-popup never changes a weight
    for k, v in final.items():
        assert torch.equal(start[k] * masks[k] if k in masks else start[k], v), k


def five_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``digits`` a 5-class dataset (labels mod 5) for the runs that follow."""
    original = run_mod.load_dataset

    def load(name, data_dir=None, device="cpu"):
        d = original(name, data_dir, device)
        return dataclasses.replace(d, train_y=d.train_y % 5, test_y=d.test_y % 5, num_classes=5)

    monkeypatch.setattr(run_mod, "load_dataset", load)


def test_a_class_count_change_reinitialises_the_classifier_with_a_random_mask_at_the_source_density(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        five_classes(m)
        seen = capture_init(m)
        train_run(config("imp", rate=0.5), tmp_path / "src", device="cpu")
    src_init = seen[0]
    src_masks = load_file(str(tmp_path / "src" / "mask.safetensors"))
    assert tuple(src_masks["3.weight"].shape)[0] == 5
    assert torch.equal(source_start_weights(read_source(tmp_path / "src"), DIGITS_SHAPE)["3.weight"],
                       src_init["3.weight"])
    inits = capture_init(monkeypatch)
    starts = capture_start(monkeypatch)
    s = train_run(config(mask_from=str(tmp_path / "src")), tmp_path / "t", device="cpu")
    masks = {k: v.bool() for k, v in load_file(str(tmp_path / "t" / "mask.safetensors")).items()}
    head = masks["3.weight"]
    assert head.shape[0] == 10
    d = src_masks["3.weight"].float().mean().item()
    assert int(head.sum()) == round(d * head.numel())
    for k in ("1.weight",):
        assert torch.equal(masks[k], src_masks[k].bool())
        assert torch.equal(starts["train"][k], src_init[k] * masks[k])
    # the classifier comes from this run's init, masked
    assert torch.equal(starts["train"]["3.weight"], inits[0]["3.weight"] * head)
    assert s["transfer_replaced"] == ["3.weight"]
    assert s["transfer_output"].startswith("reinitialised, random mask at the source's density")


def test_resume_after_a_kill_gives_the_identical_run(source: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # after the mask line, after the mid-phase checkpoint, before the last line
    cfg = config(mask_from=str(source), transfer_shuffle=True, optimizer="adam")
    check_kills(cfg, tmp_path, monkeypatch, [("log", 1), ("save", 1), ("log", -1)])


def test_a_resume_refuses_a_source_whose_mask_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train_run(config("imp", rate=0.5), tmp_path / "src", device="cpu")
    cfg = config(mask_from=str(tmp_path / "src"))
    with monkeypatch.context() as m:
        kill_at(m, "save", 1)
        with pytest.raises(Killed):
            train_run(cfg, tmp_path / "t", device="cpu")
    train_run(config("imp", rate=0.5, seed=3), tmp_path / "src", device="cpu", overwrite=True)  # another mask
    with pytest.raises(CheckpointError, match="the source's mask differs from the one this run started with"):
        train_run(cfg, tmp_path / "t", device="cpu")


def unfinished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    with monkeypatch.context() as m:
        kill_at(m, "save", 1)
        with pytest.raises(Killed):
            train_run(config("imp", rate=0.5), tmp_path / "unfinished", device="cpu")
    return tmp_path / "unfinished"


@pytest.mark.parametrize("case,message", [
    ("unset", r"--method transfer needs --mask-from RUN_DIR .*, got none"),
    ("missing", r"--mask-from '.*nowhere' must be a finished run directory, got a path that is not a directory"),
    ("unfinished", r"--mask-from '.*unfinished' is not a finished run \(no summary.json\)"),
    ("width", r"the architecture does not fit: 1.weight \(125, 64\) in the source vs \(250, 64\) here; 3.weight"),
    ("model", r"the architecture does not fit: --model lenet300100 here, fc2 in the source"),
    ("density", r"--density must be the source run's density 0.3 .*, got 0.5"),
    ("prune_output", r"set prune_output = true and prune_bias = false as in the source \(here: false, false\)"),
    ("init_from", r"--init-from and --transfer-weights source both choose the starting weights"),
])
def test_bad_sources_are_refused_in_one_line_before_anything_is_written(case: str, message: str, source: Path,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    kw: dict = {"mask_from": str(source)}
    cfg = None
    if case == "unset":
        kw = {}
    elif case == "missing":
        kw["mask_from"] = str(tmp_path / "nowhere")
    elif case == "unfinished":
        kw["mask_from"] = str(unfinished(tmp_path, monkeypatch))
    elif case == "width":
        cfg = config(width=0.5, **kw)
    elif case == "model":
        cfg = dataclasses.replace(config(**kw), model=ModelConfig(model="lenet300100"))
    elif case == "density":
        cfg = config(density=0.5, **kw)
    elif case == "prune_output":
        kw["prune_output"] = False
    elif case == "init_from":
        cfg = dataclasses.replace(config(**kw), model=ModelConfig(model="fc2", width=0.25, init_from=str(source)))
    cfg = cfg or config(**kw)
    with pytest.raises(InputError, match=message) as info:
        train_run(cfg, tmp_path / "out", device="cpu")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


@given(st.lists(st.integers(1, 40), min_size=1, max_size=4), st.integers(0, 2**31), st.data())
def test_shuffle_within_layers_preserves_every_layers_kept_count(sizes: list[int], seed: int,
                                                                 data: st.DataObject) -> None:
    masks = {f"t{i}": torch.tensor(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
             for i, n in enumerate(sizes)}
    out = shuffle_within_layers(masks, torch.Generator().manual_seed(seed))
    assert list(out) == list(masks)
    for k, m in masks.items():
        assert out[k].shape == m.shape and int(out[k].sum()) == int(m.sum())


@given(st.integers(1, 6), st.integers(1, 6), st.data())
def test_random_mask_keeps_exactly_the_requested_count(rows: int, cols: int, data: st.DataObject) -> None:
    kept = data.draw(st.integers(0, rows * cols))
    m = random_mask((rows, cols), kept, torch.Generator().manual_seed(0))
    assert m.shape == (rows, cols) and m.dtype == torch.bool and int(m.sum()) == kept
