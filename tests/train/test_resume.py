"""Resuming a killed run loses no metrics: for every multi-phase method and kill point, the resumed run's
``metrics.jsonl`` equals an uninterrupted run's line for line (wall-time fields aside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongticket.train import context as ctx_mod
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.rundir import RunDir
from strongticket.train.run import train_run

WALL_TIME_FIELDS = {"time"}
EPOCHS = 2  # checkpoints per phase (checkpoint_every=1): one mid-phase, one final

# methods that train more than one phase, or log outside the training loop (mask events)
MULTI_PHASE = [("magnitude", 0.3, {}), ("magnitude", 0.3, {"reinit_control": True, "retrain": "finetune"}),
               ("imp", 0.5, {"rate": 0.3}), ("imp-rewind", 0.5, {"rate": 0.3, "rewind_step": 3}),
               ("gmp", 0.3, {"gmp_every": 4}), ("edge-popup", 0.5, {}), ("early-bird", 0.5, {}),
               ("isp", 0.5, {}), ("bip", 0.3, {"bip_finetune": True}),
               ("lottery-pools", 0.5, {"rate": 0.3, "pool_val": 100}), ("gem-miner", 0.3, {"gem_period": 1}),
               ("inertial", 0.3, {"im_steps": 4, "im_lanczos": 8, "im_max_rank": 4, "im_batches": 1})]


class Killed(BaseException):
    """Stands for SIGINT/SIGTERM: a BaseException, so no ``except Exception`` in the code can swallow it."""


def tiny(method: str, density: float, extra: dict) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=0.25),
                     optim=OptimConfig(epochs=EPOCHS, lr=0.05, momentum=0.9),
                     prune=PruneConfig(method=method, density=density, **extra), seed=1)


def metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_TIME_FIELDS}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def kill_at(monkeypatch: pytest.MonkeyPatch, where: str, k: int) -> None:
    """Raise :class:`Killed` right after the ``k``-th metrics line (``log``) or checkpoint (``save``) is written."""
    target, name = (ctx_mod.RunContext, "log") if where == "log" else (RunDir, "save_checkpoint")
    original = getattr(target, name)
    count = [0]

    def wrapped(self, *args, **kwargs):
        original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == k:
            raise Killed

    monkeypatch.setattr(target, name, wrapped)


def check_kills(config: RunConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                points: list[tuple[str, int]]) -> None:
    ref_dir = tmp_path / "ref"
    ref = train_run(config, ref_dir, device="cpu")
    expected = metrics(ref_dir)
    for where, k in points:
        k = k if k > 0 else len(expected) + k
        run = tmp_path / f"{where}{k}"
        with monkeypatch.context() as m:
            kill_at(m, where, k)
            try:
                train_run(config, run, device="cpu")
            except Killed:
                pass
            else:
                continue  # fewer events than k: this kill point does not occur for this method
        resumed = train_run(config, run, device="cpu")
        assert metrics(run) == expected, f"metrics differ after a kill at {where} #{k}"
        assert resumed["test_accuracy"] == ref["test_accuracy"]


IDS = [f"{m}-{','.join(e) or 'default'}" for m, _, e in MULTI_PHASE]


@pytest.mark.parametrize("method,density,extra", MULTI_PHASE, ids=IDS)
def test_resumed_metrics_equal_an_uninterrupted_run(method: str, density: float, extra: dict, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # between phases (after the first phase's final checkpoint), inside the second phase (after its mid-phase
    # checkpoint), and after the second-to-last metrics line
    points = [("save", EPOCHS), ("save", EPOCHS + 1), ("log", -1)]
    check_kills(tiny(method, density, extra), tmp_path, monkeypatch, points)


@pytest.mark.slow
@pytest.mark.parametrize("method,density,extra", MULTI_PHASE, ids=IDS)
def test_resumed_metrics_equal_an_uninterrupted_run_at_every_kill_point(method: str, density: float, extra: dict,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    n_phases = 4  # at most: magnitude with the reinit control, imp with two rounds
    points = [("log", k) for k in range(1, 16)] + [("save", k) for k in range(1, EPOCHS * n_phases + 1)]
    check_kills(tiny(method, density, extra), tmp_path, monkeypatch, points)


def test_torn_last_metrics_line_is_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny("imp", 0.5, {"rate": 0.3})
    ref = tmp_path / "ref"
    train_run(config, ref, device="cpu")
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        kill_at(m, "log", 5)
        with pytest.raises(Killed):
            train_run(config, run, device="cpu")
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"event": "ev')  # a kill in the middle of writing a line
    train_run(config, run, device="cpu")
    assert metrics(run) == metrics(ref)


@pytest.mark.parametrize("name,damage", [("model.safetensors", "truncate"), ("mask.safetensors", "flip"),
                                         ("metrics.jsonl", "truncate"), ("model.safetensors", "delete")])
def test_rerun_of_a_finished_run_verifies_its_files(name: str, damage: str, tmp_path: Path) -> None:
    from strongticket.train.rundir import CheckpointError

    config = tiny("random", 0.3, {})
    s = train_run(config, tmp_path / "run", device="cpu")
    assert set(s["files"]) == {"config.json", "metrics.jsonl", "mask.safetensors", "model.safetensors"}
    assert train_run(config, tmp_path / "run", device="cpu") == s  # intact: reported as finished
    p = tmp_path / "run" / name
    data = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        p.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        p.unlink()
    with pytest.raises(CheckpointError, match=f"{name} of the finished run .* (damaged|missing)"):
        train_run(config, tmp_path / "run", device="cpu")
    assert not p.exists() if damage == "delete" else p.read_bytes() != data  # the evidence is left as it was
    assert train_run(config, tmp_path / "run", device="cpu", overwrite=True)["test_accuracy"] == s["test_accuracy"]


@pytest.mark.parametrize("key,value", [("step", "x"), ("done", 1), ("metrics_lines", 2.5), ("epoch", None)])
def test_resume_from_a_damaged_state_json_names_the_field(key: str, value: object, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A state.json whose fields have the wrong types is a one-line CheckpointError naming the field."""
    from strongticket.train.rundir import CheckpointError

    config = tiny("dense", 1.0, {})
    run = tmp_path / "run"
    kill_at(monkeypatch, "save", 1)
    with pytest.raises(Killed):
        train_run(config, run, device="cpu")
    monkeypatch.undo()
    (state_path,) = run.glob("checkpoints/*/state.json")
    state = json.loads(state_path.read_text())
    state[key] = value
    state_path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=f"'{key}' must be") as info:
        train_run(config, run, device="cpu")
    assert "\n" not in str(info.value)
