"""Starting from another run's final weights: an exact copy, the classifier replaced when the class count differs,
and one-line refusals naming the layers that do not fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from strongticket.errors import InputError
from strongticket.nets.zoo import build_model
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.pretrained import classifier_names, load_pretrained
from strongticket.train.run import train_run


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished dense run of a quarter-width LeNet-300-100 on 8x8 digits."""
    run = tmp_path_factory.mktemp("pretrained") / "run"
    cfg = RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=256, test_subset=50),
                    model=ModelConfig(model="lenet300100", width=0.25), optim=OptimConfig(epochs=1, lr=0.05),
                    prune=PruneConfig(method="dense"), seed=2)
    train_run(cfg, run, device="cpu")
    return run


def net(num_classes: int = 10, width: float = 0.25, seed: int = 7) -> torch.nn.Module:
    return build_model("lenet300100", num_classes=num_classes, in_channels=1, image_size=8, width=width, seed=seed)


def test_same_architecture_copies_every_tensor(source: Path) -> None:
    n = net()
    t = load_pretrained(n, source)
    saved = load_file(str(source / "model.safetensors"))
    assert t.replaced == () and set(t.loaded) == set(saved) and t.source_method == "dense"
    for k, v in n.state_dict().items():
        assert torch.equal(v, saved[k])


def test_another_class_count_replaces_only_the_classifier_and_says_so(source: Path) -> None:
    n = net(num_classes=5)
    fresh = {k: v.clone() for k, v in n.state_dict().items()}
    t = load_pretrained(n, source)
    head = classifier_names(n)
    assert head and set(t.replaced) == set(head)
    saved = load_file(str(source / "model.safetensors"))
    for k, v in n.state_dict().items():
        assert torch.equal(v, fresh[k] if k in head else saved[k])
    assert "classifier" in t.describe() and "class count differs" in t.describe()


def test_another_width_is_refused_naming_the_layers(source: Path) -> None:
    n = net(width=0.5)
    before = {k: v.clone() for k, v in n.state_dict().items()}
    with pytest.raises(InputError, match=r"architecture does not fit: .*\(75, 64\) vs \(150, 64\)") as info:
        load_pretrained(n, source)
    assert "\n" not in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in n.state_dict().items())  # nothing half-copied


def test_a_directory_that_is_not_a_finished_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a finished run"):
        load_pretrained(net(), tmp_path)
    with pytest.raises(InputError, match="must be a run directory"):
        load_pretrained(net(), tmp_path / "missing")


def test_a_run_of_another_architecture_is_refused_before_its_directory_is_made(source: Path, tmp_path: Path) -> None:
    cfg = RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=256, test_subset=50),
                    model=ModelConfig(model="lenet300100", width=0.5, init_from=str(source)),
                    optim=OptimConfig(epochs=1, lr=0.05), prune=PruneConfig(method="dense"), seed=2)
    with pytest.raises(InputError, match=r"architecture does not fit: .*\(75, 64\) vs \(150, 64\)"):
        train_run(cfg, tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()  # once left behind holding config.json
