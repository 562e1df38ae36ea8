"""End-to-end tests of training runs on digits: every method, run directories, resume, bad input, DDP."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from strongticket.errors import DataError, InputError
from strongticket.train import context as ctx_mod
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.methods import method_names
from strongticket.train.methods.gmp import cubic_density
from strongticket.train.methods.imp import imp_densities
from strongticket.train.rundir import CheckpointError
from strongticket.train.run import train_run


def cfg(method: str = "dense", density: float = 1.0, epochs: int = 2, **prune) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="digits", batch_size=64, train_subset=512),
                     model=ModelConfig(model="lenet300100", width=0.5,
                                       init="signed_constant" if method == "edge-popup" else "default"),
                     optim=OptimConfig(epochs=epochs, lr=0.05, momentum=0.9, weight_decay=1e-4, schedule="cosine"),
                     prune=PruneConfig(method=method, density=density, synflow_iters=5,
                                       scope="layerwise" if method == "edge-popup" else "global", **prune),
                     seed=3)


def metrics_without_time(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


METHODS = [("dense", 1.0, {}), ("random", 0.2, {}), ("random-erk", 0.2, {}), ("magnitude", 0.2, {}),
           ("gmp", 0.2, {"gmp_every": 4}), ("imp", 0.5, {"rate": 0.3}),
           ("imp-rewind", 0.5, {"rate": 0.3, "rewind_step": 3}),
           ("edge-popup", 0.5, {}), ("snip", 0.2, {}), ("grasp", 0.2, {}), ("synflow", 0.2, {}),
           ("early-bird", 0.2, {"eb_variant": "magnitude"}),
           ("isp", 0.2, {"isp_copies": 3, "isp_step": 0.3, "isp_main_fraction": 0.25}),
           ("gsm", 0.2, {}), ("gem-miner", 0.2, {"gem_period": 1}), ("bip", 0.2, {}),
           ("inertial", 0.2, {"im_steps": 5, "im_lanczos": 6, "im_max_rank": 3, "im_batches": 1}),
           ("lottery-pools", 0.5, {"rate": 0.3, "pool_val": 64})]

#: methods that need another finished run as input, tested in their own files (transfer: tests/train/test_transfer.py)
NEEDS_A_SOURCE_RUN = {"transfer"}


def test_every_registered_method_is_tested() -> None:
    assert sorted(m for m, _, _ in METHODS) == sorted(set(method_names()) - NEEDS_A_SOURCE_RUN)


@pytest.mark.parametrize("method,density,extra", METHODS)
def test_each_method_reaches_its_density_and_exports_a_mask(method: str, density: float, extra: dict,
                                                               tmp_path: Path) -> None:
    s = train_run(cfg(method, density, **extra), tmp_path / "run", device="cpu")
    assert s["density"] == pytest.approx(density, abs=2e-3)
    assert s["collapsed"] == []
    assert 0 <= s["test_accuracy"] <= 1
    masks = load_file(str(tmp_path / "run" / "mask.safetensors"))
    model = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert set(masks) == set(s["prunable_names"]) and all(m.dtype == torch.bool for m in masks.values())
    for name, m in masks.items():
        assert model[name].shape == m.shape and bool((model[name][~m] == 0).all())
    for f in ["config.json", "metrics.jsonl", "summary.json"]:
        assert (tmp_path / "run" / f).is_file()


def test_dense_training_learns_digits(tmp_path: Path) -> None:
    config = cfg("dense", epochs=15)
    config = RunConfig(**{**config.__dict__, "data": DataConfig(dataset="digits", batch_size=32)})
    s = train_run(config, tmp_path / "run", device="cpu")
    assert s["test_accuracy"] > 0.8


def test_edge_popup_keeps_the_random_weights(tmp_path: Path) -> None:
    train_run(cfg("edge-popup", 0.5), tmp_path / "run", device="cpu")
    w = load_file(str(tmp_path / "run" / "model.safetensors"))["1.weight"]
    m = load_file(str(tmp_path / "run" / "mask.safetensors"))["1.weight"]
    assert torch.allclose(w[m].abs(), torch.full_like(w[m], (2 / 64) ** 0.5))


def test_imp_reinit_control_is_reported(tmp_path: Path) -> None:
    s = train_run(cfg("imp", 0.5, rate=0.5, reinit_control=True, epochs=1), tmp_path / "run", device="cpu")
    assert "reinit_test_accuracy" in s and set(s["phases"]) == {"round0", "round1", "reinit"}


def test_runs_are_reproducible(tmp_path: Path) -> None:
    a = train_run(cfg("snip", 0.3), tmp_path / "a", device="cpu")
    b = train_run(cfg("snip", 0.3), tmp_path / "b", device="cpu")
    assert a["test_accuracy"] == b["test_accuracy"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


class Killed(Exception):
    pass


@pytest.mark.parametrize("method,density,extra,kill_phase,kill_epoch",
                         [("gmp", 0.3, {"gmp_every": 4}, "train", 3),
                          ("imp-rewind", 0.5, {"rate": 0.3, "rewind_step": 5}, "round1", 2)])
def test_resume_after_a_kill_matches_an_uninterrupted_run(method, density, extra, kill_phase, kill_epoch,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = RunConfig(**{**cfg(method, density, epochs=4, **extra).__dict__, "checkpoint_every": 2})
    ref = train_run(config, tmp_path / "ref", device="cpu")

    original = ctx_mod.EvalAndLog.on_epoch

    def kill_after_eval(self, trainer):
        original(self, trainer)
        if self.phase == kill_phase and trainer.epoch == kill_epoch:
            raise Killed  # after this epoch's metrics line, before its checkpoint (checkpoint_every=2)

    monkeypatch.setattr(ctx_mod.EvalAndLog, "on_epoch", kill_after_eval)
    with pytest.raises(Killed):
        train_run(config, tmp_path / "run", device="cpu")
    assert not (tmp_path / "run" / "summary.json").exists()
    monkeypatch.setattr(ctx_mod.EvalAndLog, "on_epoch", original)
    resumed = train_run(config, tmp_path / "run", device="cpu")

    assert resumed["test_accuracy"] == ref["test_accuracy"]
    for f in ["model.safetensors", "mask.safetensors"]:
        assert (tmp_path / "run" / f).read_bytes() == (tmp_path / "ref" / f).read_bytes()
    assert metrics_without_time(tmp_path / "run") == metrics_without_time(tmp_path / "ref")


def test_a_subset_larger_than_the_set_is_recorded_as_the_size_used_and_said(tmp_path: Path) -> None:
    config = replace(cfg("dense", epochs=1), data=DataConfig(dataset="digits", batch_size=64, train_subset=5000,
                                                             test_subset=100))
    notes: list[str] = []
    s = train_run(config, tmp_path / "run", device="cpu", note=notes.append)
    assert (s["train_examples"], s["test_examples"]) == (1437, 100)  # digits: 1437 training examples in all
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["train_examples"] == 1437
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["data"]["train_subset"] == 5000
    assert notes == ["data.train_subset 5000 is more than the 1437 train examples of digits: all of them are used "
                     "(summary.json: train_examples)"]
    assert train_run(config, tmp_path / "run", device="cpu") == s  # the run resumes (finished: not retrained)


def test_finished_run_is_not_retrained(tmp_path: Path) -> None:
    a = train_run(cfg("random", 0.3, epochs=1), tmp_path / "run", device="cpu")
    b = train_run(cfg("random", 0.3, epochs=1), tmp_path / "run", device="cpu")
    assert a == b


def test_resume_with_another_config_names_the_differing_fields(tmp_path: Path) -> None:
    train_run(cfg("random", 0.3, epochs=1), tmp_path / "run", device="cpu")
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(InputError, match=r"prune.density: 0.3 -> 0.4.*|optim.epochs"):
        train_run(cfg("random", 0.4, epochs=2), tmp_path / "run", device="cpu")
    with pytest.raises(InputError, match="optim.epochs: 1 -> 2"):
        train_run(cfg("random", 0.3, epochs=2), tmp_path / "run", device="cpu")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


def test_damaged_checkpoint_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg("random", 0.3, epochs=3)

    def boom(self, trainer):
        raise Killed

    monkeypatch.setattr(ctx_mod.Checkpoint, "on_end", boom)
    with pytest.raises(Killed):
        train_run(config, tmp_path / "run", device="cpu")
    monkeypatch.undo()
    ckpt = next((tmp_path / "run" / "checkpoints" / "train").glob("ckpt-*.safetensors"))
    data = bytearray(ckpt.read_bytes())
    data[-3] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        train_run(config, tmp_path / "run", device="cpu")
    s = train_run(config, tmp_path / "run", device="cpu", overwrite=True)
    assert s["density"] == pytest.approx(0.3, abs=1e-3)


@pytest.mark.parametrize("section,values,match", [
    ("prune", {"method": "random", "density": 0.0}, r"prune.density \(--density\) must be in \(0, 1\]"),
    ("prune", {"method": "random", "density": 1.5}, r"prune.density \(--density\) must be in \(0, 1\]"),
    ("prune", {"method": "nope"}, "valid methods: dense, random"),
    ("model", {"model": "vgg"}, "valid models: fc2"),
    ("data", {"dataset": "imagenet"}, "valid datasets: digits"),
    ("prune", {"method": "dense", "density": 0.5}, "density must be 1"),
    ("prune", {"method": "imp-rewind", "density": 0.5}, "rewind_step"),
    ("prune", {"method": "snip", "density": None}, "method snip needs a density: pass --density"),
])
def test_bad_input_is_rejected_before_anything_is_written(section: str, values: dict, match: str,
                                                          tmp_path: Path) -> None:
    with pytest.raises(InputError, match=match):
        base = cfg()
        config = replace(base, **{section: replace(getattr(base, section), **values)})
        train_run(config, tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


def test_missing_data_leaves_no_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGTICKET_DATA", raising=False)
    config = RunConfig(**{**cfg().__dict__, "data": DataConfig(dataset="mnist")})
    with pytest.raises(DataError, match="--data-dir"):
        train_run(config, tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


def test_non_run_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("x")
    with pytest.raises(InputError, match="not a run directory"):
        train_run(cfg(), tmp_path / "run", device="cpu")
    with pytest.raises(InputError, match="strongticket did not write"):
        train_run(cfg(), tmp_path / "run", device="cpu", overwrite=True)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["precious.txt"]


def test_layer_collapse_is_detected_and_reported(tmp_path: Path) -> None:
    s = train_run(cfg("snip", 1e-4, epochs=1), tmp_path / "run", device="cpu")
    assert s["collapsed"]
    lines = metrics_without_time(tmp_path / "run")
    assert lines[0]["event"] == "mask" and lines[0]["collapsed"] == s["collapsed"]


def test_mnist_subset_trains(shared_data_dir: Path, tmp_path: Path) -> None:
    config = RunConfig(data=DataConfig(dataset="mnist", train_subset=2000, test_subset=1000),
                       optim=OptimConfig(epochs=3, lr=0.05, momentum=0.9),
                       prune=PruneConfig(method="magnitude", density=0.1))
    s = train_run(config, tmp_path / "run", data_dir=shared_data_dir, device="cpu")
    assert s["test_accuracy"] > 0.6


def test_schedules() -> None:
    assert imp_densities(0.1, 0.2)[-1] == 0.1 and len(imp_densities(0.1, 0.2)) == 11
    assert imp_densities(0.64, 0.2) == pytest.approx([0.8, 0.64])
    assert cubic_density(0, 0, 100, 0.1) == 1.0 and cubic_density(100, 0, 100, 0.1) == pytest.approx(0.1)
    assert cubic_density(50, 0, 100, 0.1) == pytest.approx(1 - 0.9 * (1 - 0.5**3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, config_dict: dict) -> None:
    os.environ.update({"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    config = RunConfig.from_dict(config_dict)
    s = train_run(config, out, device="cpu")
    torch.save({k: v for k, v in s.items() if k == "test_accuracy"}, f"{out}-rank{rank}.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


def test_two_process_gloo_ddp_trains_one_model(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    config = cfg("random", 0.5, epochs=2)
    out = str(tmp_path / "run")
    mp.spawn(_ddp_worker, args=(2, _free_port(), out, config.to_dict()), nprocs=2, join=True)
    accs = [torch.load(f"{out}-rank{r}.pt", weights_only=True)["test_accuracy"] for r in range(2)]
    assert accs[0] == accs[1]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["density"] == pytest.approx(0.5, abs=1e-3)
    single = train_run(config, tmp_path / "single", device="cpu")
    assert abs(single["test_accuracy"] - summary["test_accuracy"]) < 0.1  # same global batch, same schedule


@pytest.mark.parametrize("model,method", [("conv2", "snip"), ("resnet20", "edge-popup")])
def test_conv_models_train_on_tiny_cifar_with_augmentation(model: str, method: str, tmp_path: Path) -> None:
    from tests.train.test_data import write_tiny_cifar

    write_tiny_cifar(tmp_path / "data", n_per_batch=8)
    config = RunConfig(data=DataConfig(dataset="cifar10", batch_size=16),
                       model=ModelConfig(model=model, width=0.125), optim=OptimConfig(epochs=1, lr=0.01),
                       prune=PruneConfig(method=method, density=0.5, scope="layerwise"))
    s = train_run(config, tmp_path / "run", data_dir=tmp_path / "data", device="cpu")
    assert s["density"] == pytest.approx(0.5, abs=0.01)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["data"]["augment"] == "flip_crop"


@pytest.mark.gpu
@pytest.mark.parametrize("method,density", [("edge-popup", 0.5), ("gmp", 0.2)])
def test_cuda_run_with_amp(method: str, density: float, tmp_path: Path) -> None:
    config = RunConfig(**{**cfg(method, density).__dict__, "optim": OptimConfig(epochs=2, lr=0.05, amp=True)})
    s = train_run(config, tmp_path / "run", device="auto")
    assert s["device"].startswith("cuda") and s["density"] == pytest.approx(density, abs=2e-3)


def test_early_stop_ends_a_phase_without_improvement(tmp_path: Path) -> None:
    config = RunConfig(**{**cfg("dense").__dict__,
                          "optim": OptimConfig(epochs=10, lr=1e-12, early_stop_patience=2)})
    s = train_run(config, tmp_path / "run", device="cpu")
    evals = [m for m in metrics_without_time(tmp_path / "run") if m["event"] == "eval"]
    assert len(evals) == 3 and s["phases"]["train"]["step"] < 10 * 8


def test_init_from_starts_a_run_from_another_runs_final_weights(tmp_path):
    """Fine-tuning: the new run's first evaluation is the source's accuracy (same task, same weights), the
    summary records the transfer, and an unfinished or edge-popup use is refused before anything is written."""
    from strongticket.errors import InputError

    base = RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=0.25), optim=OptimConfig(epochs=2, lr=0.05),
                     prune=PruneConfig(method="dense"), seed=1)
    source = train_run(base, tmp_path / "src", device="cpu")
    tuned_cfg = RunConfig(data=base.data, model=ModelConfig(model="fc2", width=0.25, init_from=str(tmp_path / "src")),
                          optim=OptimConfig(epochs=1, lr=1e-9), prune=PruneConfig(method="dense"), seed=2)
    tuned = train_run(tuned_cfg, tmp_path / "tuned", device="cpu")
    assert tuned["init_from"]["source"] == str(tmp_path / "src") and tuned["init_from"]["replaced"] == []
    assert tuned["test_accuracy"] == pytest.approx(source["test_accuracy"], abs=0.011)  # lr ~ 0: the same weights
    ep = RunConfig(data=base.data, model=tuned_cfg.model, optim=tuned_cfg.optim,
                   prune=PruneConfig(method="edge-popup", density=0.5), seed=2)
    with pytest.raises(InputError, match="does not apply to --method edge-popup"):
        train_run(ep, tmp_path / "ep", device="cpu")
    missing = RunConfig(data=base.data, model=ModelConfig(model="fc2", width=0.25, init_from=str(tmp_path / "no")),
                        optim=tuned_cfg.optim, prune=PruneConfig(method="dense"), seed=2)
    with pytest.raises(InputError, match="--init-from"):
        train_run(missing, tmp_path / "m", device="cpu")
    assert not (tmp_path / "ep").exists() and not (tmp_path / "m").exists()
