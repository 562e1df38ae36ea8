"""Tests of the loop's pure parts: learning-rate schedules and configuration round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongticket.errors import InputError
from strongticket.train.config import OptimConfig, RunConfig, config_diff, derive_seed
from strongticket.train.loop import lr_factor


def test_cosine_schedule_goes_from_one_to_zero() -> None:
    cfg = OptimConfig(schedule="cosine")
    assert lr_factor(cfg, 0, 100, 10) == 1.0 and lr_factor(cfg, 100, 100, 10) == pytest.approx(0.0)
    assert lr_factor(cfg, 50, 100, 10) == pytest.approx(0.5)


def test_step_schedule_multiplies_at_milestones() -> None:
    cfg = OptimConfig(schedule="step", milestones=(2, 4), gamma=0.1)
    assert [lr_factor(cfg, s, 100, 10) for s in (0, 19, 20, 40)] == pytest.approx([1, 1, 0.1, 0.01])


def test_warmup_is_linear() -> None:
    cfg = OptimConfig(warmup_steps=4)
    assert [lr_factor(cfg, s, 100, 10) for s in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1, 1])


def test_config_round_trips_through_dict_and_toml(tmp_path: Path) -> None:
    cfg = RunConfig().with_updates(optim={"milestones": (3, 5), "lr": 0.2}, prune={"method": "snip", "density": 0.1})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    p = tmp_path / "c.toml"
    p.write_text('seed = 4\n[prune]\nmethod = "imp"\ndensity = 0.1\n[optim]\nmilestones = [1, 2]\n')
    c = RunConfig.from_toml(p)
    assert c.seed == 4 and c.prune.method == "imp" and c.optim.milestones == (1, 2)


def test_unknown_config_keys_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="valid"):
        RunConfig.from_dict({"prune": {"sparsity": 0.9}})


def test_config_diff_names_nested_fields() -> None:
    a, b = RunConfig().to_dict(), RunConfig().with_updates(prune={"density": 0.5}).to_dict()
    assert config_diff(a, b) == ["prune.density: None -> 0.5"]


def test_derived_seeds_differ_by_stream() -> None:
    assert derive_seed(0, "data", 1) != derive_seed(0, "data", 2) != derive_seed(0, "aug", 1)
    assert derive_seed(0, "init") == derive_seed(0, "init")
