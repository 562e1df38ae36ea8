"""The comparison's TOML: every key checked before any work, one line per problem, digests that tell
configurations apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongticket.compare.config import CompareConfig
from strongticket.errors import InputError

BASE = {"name": "t", "seeds": [0, 1], "train": {"data": {"dataset": "digits"}, "model": {"model": "fc2"},
                                                 "optim": {"epochs": 1}},
        "construct": [{"method": "pensia", "options": {"per_weight_eps": 0.01}}],
        "find": [{"method": "magnitude", "densities": [0.5]}]}


def with_(**over):
    return {**BASE, **over}


def test_a_valid_configuration_gives_runs_with_the_seed_and_the_finder_settings() -> None:
    cfg = CompareConfig.from_dict(with_(find=[{"method": "imp", "densities": [0.2], "train": {"prune": {"rate": 0.5}}}]))
    run = cfg.find_run(cfg.find[0], 0.2, 1)
    assert (run.seed, run.prune.method, run.prune.density, run.prune.rate) == (1, "imp", 0.2, 0.5)
    assert cfg.base_run(0).prune.method == "dense" and cfg.construct[0].label == "pensia (per_weight_eps=0.01)"


@pytest.mark.parametrize("bad, message", [
    (with_(colour="red"), "unknown key 'colour' in the top level; allowed keys: name, seeds, pretrain, train, construct, find"),
    (with_(seeds=[]), "seeds must be a non-empty list of integers >= 0, got []"),
    (with_(seeds=[0, 0]), "seeds must not repeat"),
    (with_(seeds=["a"]), "seeds must be a non-empty list of integers"),
    (with_(construct=[{"method": "pensia", "colour": 1}]), "unknown key 'colour' in [[construct]] #1; allowed keys: "
                                                           "method, label, options"),
    (with_(construct=[{"method": "nope"}]), "--method must be one of"),
    (with_(construct=[{"method": "pensia", "options": {"eps": 2.0}}]), "[[construct]] #1"),
    (with_(construct=[{"method": "pensia", "options": {"seed": 3}}]), "option 'seed' is set by the comparison"),
    (with_(construct=[{"method": "pensia", "options": {"rho": 3}}]), "--rho does not apply to --method pensia"),
    (with_(construct=[{"method": "pensia", "options": {"distribution": "gauss"}}]),
     "[[construct]] #1 (pensia (distribution=gauss)): --distribution must be one of"),
    (with_(construct=[{"method": "pensia", "options": {"nonneg_input": "no"}}]),
     "--nonneg-input/--signed-input must be true or false, got 'no'"),
    (with_(find=[{"method": "imp"}]), "densities must be a non-empty list of numbers in (0, 1]"),
    (with_(find=[{"method": "imp", "densities": [1.5]}]), "densities must be a non-empty list of numbers in (0, 1]"),
    (with_(find=[{"method": "nope", "densities": [0.5]}]), "unknown method 'nope'"),
    (with_(find=[{"method": "imp", "densities": [0.5], "train": {"optim": {"lr": -1}}}]), "optim.lr (--lr) must be > 0"),
    (with_(find=[{"method": "imp", "densities": [0.5], "train": {"optim": {"colour": 1}}}]), "unknown keys ['colour']"),
    (with_(train={"prune": {"method": "imp"}}), "[train] may not hold a [train.prune] table"),
    (with_(train={"seed": 3}), "[train] may not set seed"),
    (with_(train={"data": {"dataset": "digits", "test_subset": 10}}), "may not set test_subset"),
    (with_(train={"data": {"dataset": "svhn"}}), "[train]: unknown dataset"),
    (with_(construct=[], find=[]), "nothing to compare"),
    (with_(find=[{"method": "magnitude", "densities": [0.5]}, {"method": "magnitude", "densities": [0.1]}]),
     "two entries share the label 'magnitude'"),
])
def test_bad_configurations_are_one_line_errors_naming_the_key(bad, message: str) -> None:
    with pytest.raises(InputError) as info:
        CompareConfig.from_dict(bad)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_digest_changes_with_any_setting_and_not_with_key_order() -> None:
    a = CompareConfig.from_dict(BASE)
    b = CompareConfig.from_dict(dict(reversed(list(BASE.items()))))
    c = CompareConfig.from_dict(with_(seeds=[0, 2]))
    assert a.digest() == b.digest() != c.digest()


def test_a_toml_file_that_does_not_parse_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("name = \n")
    with pytest.raises(InputError, match="cannot parse CONFIG .*c.toml.* as TOML"):
        CompareConfig.from_toml(p)
    with pytest.raises(InputError, match="CONFIG .*missing.toml.* cannot be read"):
        CompareConfig.from_toml(tmp_path / "missing.toml")


PRETRAIN = {"data": {"dataset": "digits"}, "model": {"model": "fc2"}, "optim": {"epochs": 1}}


@pytest.mark.parametrize("over,message", [
    ({"pretrain": {**PRETRAIN, "prune": {"method": "imp"}}}, r"\[pretrain\] may not set"),
    ({"pretrain": {**PRETRAIN, "seed": 3}}, r"\[pretrain\] may not set"),
    ({"pretrain": {**PRETRAIN, "model": {"model": "lenet300100"}}}, "must be the one of"),
    ({"pretrain": PRETRAIN, "find": [{"method": "edge-popup", "densities": [0.5]}]}, "keeps its random weights"),
    ({"pretrain": PRETRAIN, "train": {**BASE["train"], "model": {"model": "fc2", "init_from": "x"}}},
     "may not set init_from"),
    ({"pretrain": {**PRETRAIN, "optim": {"epochs": -1}}}, r"\[pretrain\]"),
])
def test_bad_pretraining_is_a_one_line_error(over, message: str) -> None:
    with pytest.raises(InputError, match=message):
        CompareConfig.from_dict(with_(**over))


def test_pretraining_starts_the_target_and_every_finder_and_enters_the_digest() -> None:
    plain = CompareConfig.from_dict(BASE)
    pre = CompareConfig.from_dict(with_(pretrain=PRETRAIN))
    assert plain.pretrain_run(0) is None and "pretrain" not in plain.to_dict()  # old digests stay valid
    assert pre.digest() != plain.digest()
    assert pre.pretrain_run(1).seed == 1 and pre.pretrain_run(1).prune.method == "dense"
    assert pre.base_run(0, "runs/p").model.init_from == "runs/p"
    assert pre.find_run(pre.find[0], 0.5, 0, "runs/p").model.init_from == "runs/p"
    assert plain.base_run(0).model.init_from is None


@pytest.mark.parametrize("target,message", [
    ({"find": "imp", "density": 0.5}, "target names no [[find]] run: got imp @ 0.5, have ['magnitude @ 0.5']"),
    ({"find": "magnitude", "density": 0.1}, "target names no [[find]] run"),
    ({"find": "magnitude"}, "target must be { find = "),
    ({"find": "magnitude", "density": 0.5, "seed": 1}, "unknown key 'seed' in [[construct]] #1 target"),
])
def test_a_construction_target_must_name_a_finder_run(target, message: str) -> None:
    with pytest.raises(InputError) as info:
        CompareConfig.from_dict(with_(construct=[{"method": "pensia", "options": {"per_weight_eps": 0.01},
                                                  "target": target}]))
    assert message in str(info.value) and "\n" not in str(info.value)
