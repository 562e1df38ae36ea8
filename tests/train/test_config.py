"""Run configurations written before a setting existed still resume: a key missing from the older
``config.json`` equals that setting's declared default, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongticket.errors import InputError
from strongticket.train.config import (DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig, config_diff,
                                       describe_type)
from strongticket.train.run import train_run

NEW = ("gsm_lr", "gsm_momentum", "gem_score_lr", "gem_momentum", "gem_finetune_lr", "bip_granularity")


def test_a_setting_missing_from_the_older_config_equals_only_its_default() -> None:
    new = RunConfig().to_dict()
    old = json.loads(json.dumps(new))
    for key in NEW:
        del old["prune"][key]
    assert config_diff(old, new) == []
    changed = RunConfig(prune=PruneConfig(gsm_lr=0.01, bip_granularity="channel")).to_dict()
    assert config_diff(old, changed) == ["prune.bip_granularity: '<missing>' -> 'channel'",
                                        "prune.gsm_lr: '<missing>' -> 0.01"]
    assert config_diff({"prune": {}}, {"prune": {"no_such_setting": None}}) == [
        "prune.no_such_setting: '<missing>' -> None"]


def test_a_run_written_before_the_phase_settings_existed_resumes(tmp_path: Path) -> None:
    cfg = RunConfig(data=DataConfig(dataset="digits", train_subset=128, test_subset=64),
                    model=ModelConfig(model="fc2", width=0.25), optim=OptimConfig(epochs=1),
                    prune=PruneConfig(method="random", density=0.5))
    first = train_run(cfg, tmp_path / "run", device="cpu")
    path = tmp_path / "run" / "config.json"
    meta = json.loads(path.read_text())
    for key in NEW:
        del meta["config"]["prune"][key]
    path.write_text(json.dumps(meta))
    (tmp_path / "run" / "summary.json").unlink()  # as if killed before it finished (a finished run checks digests)
    assert train_run(cfg, tmp_path / "run", device="cpu")["test_accuracy"] == first["test_accuracy"]
    with pytest.raises(InputError, match=r"differing fields: prune.gsm_lr: '<missing>' -> 0.5"):
        train_run(cfg.with_updates(prune={"gsm_lr": 0.5}), tmp_path / "run", device="cpu")


def test_a_list_type_is_described_with_its_element_noun() -> None:
    assert describe_type(tuple[int, ...]) == "a list of integers"
    assert describe_type(tuple[float, ...]) == "a list of numbers"  # once "a list of umbers"
    with pytest.raises(InputError, match=r"--pool-alphas\) must be a list of numbers, got"):
        PruneConfig(method="lottery-pools", density=0.5, pool_alphas=(float("nan"),))
