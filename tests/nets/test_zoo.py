"""Tests of the model zoo: every model builds, maps its input shape to logits, honours width/bias, and draws its
initial weights from its own seeded generator only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.zoo import build_model, model_names

SEQUENTIAL_LAYERS = (nn.Linear, nn.Conv2d, nn.ReLU, nn.Flatten, nn.MaxPool2d)


@pytest.mark.parametrize("name,c,s", [("fc2", 1, 28), ("lenet300100", 1, 28), ("lenet300100", 1, 8),
                                      ("lenet5", 1, 28), ("conv2", 3, 32), ("conv4", 3, 32),
                                      ("conv6", 3, 32), ("resnet20", 3, 32), ("conv2", 1, 8)])
def test_every_model_maps_images_to_logits(name: str, c: int, s: int) -> None:
    model = build_model(name, in_channels=c, image_size=s, num_classes=7, seed=0)
    out = model(torch.zeros(2, c, s, s))
    assert out.shape == (2, 7)


def test_registry_lists_all_models() -> None:
    assert model_names() == ["fc2", "lenet300100", "lenet5", "conv2", "conv4", "conv6", "resnet20"]


@pytest.mark.parametrize("name", [n for n in ["fc2", "lenet300100", "lenet5", "conv2", "conv4", "conv6"]])
def test_non_residual_models_are_plain_sequentials(name: str) -> None:
    model = build_model(name, in_channels=3, image_size=32, seed=0)
    assert isinstance(model, nn.Sequential)
    assert all(isinstance(m, SEQUENTIAL_LAYERS) for m in model)


def test_lenet300100_has_the_published_shapes() -> None:
    shapes = [tuple(p.shape) for p in build_model("lenet300100", seed=0).parameters()]
    assert shapes == [(300, 784), (300,), (100, 300), (100,), (10, 100), (10,)]
    assert sum(p.numel() for p in build_model("lenet300100", seed=0).parameters()) == 266_610


def test_fc2_has_no_bias_by_default_and_takes_explicit_bias() -> None:
    assert [tuple(p.shape) for p in build_model("fc2", seed=0).parameters()] == [(500, 784), (10, 500)]
    assert len(list(build_model("fc2", bias=True, seed=0).parameters())) == 4
    assert all(m.bias is None for m in build_model("lenet300100", bias=False, seed=0) if isinstance(m, nn.Linear))


def test_digits_input_size_sets_fc_fan_in() -> None:
    model = build_model("lenet300100", in_channels=1, image_size=8, seed=0)
    assert model[1].in_features == 64


def test_width_multiplies_hidden_widths_only() -> None:
    model = build_model("lenet300100", width=0.5, seed=0)
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [150, 50, 10]
    tiny = build_model("conv2", in_channels=3, image_size=32, width=0.001, seed=0)
    assert [m.out_channels for m in tiny if isinstance(m, nn.Conv2d)] == [1, 1]


def test_lenet5_matches_caffe_shapes() -> None:
    convs = [m for m in build_model("lenet5", seed=0) if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [tuple(m.weight.shape) for m in convs] == [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]


def test_resnet20_has_twenty_weight_layers_and_batchnorm() -> None:
    model = build_model("resnet20", in_channels=3, image_size=32, seed=0)
    main_path = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and "shortcut" not in n]
    assert len(main_path) == 20
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert 260_000 < sum(p.numel() for p in model.parameters()) < 300_000


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(InputError, match="lenet300100"):
        build_model("vgg99", seed=0)


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"image_size": 0}, {"num_classes": 0}])
def test_bad_arguments_are_input_errors(kwargs: dict) -> None:
    with pytest.raises(InputError):
        build_model("lenet300100", **kwargs, seed=0)


def test_too_small_image_is_an_input_error() -> None:
    with pytest.raises(InputError, match="image_size"):
        build_model("lenet5", image_size=8, seed=0)


@pytest.mark.parametrize("name", ["lenet300100", "lenet5", "resnet20"])
def test_same_seed_builds_bit_identical_models_and_leaves_the_global_rng_alone(name: str) -> None:
    before = torch.random.get_rng_state()
    torch.manual_seed(1)
    a = build_model(name, in_channels=3, image_size=32, seed=7)
    torch.manual_seed(2)  # a different global state must not matter
    b = build_model(name, in_channels=3, image_size=32, seed=7)
    c = build_model(name, in_channels=3, image_size=32, generator=torch.Generator().manual_seed(7))
    state = torch.random.get_rng_state()
    torch.manual_seed(2)
    assert torch.equal(state, torch.random.get_rng_state()), "build_model advanced the global generator"
    torch.random.set_rng_state(before)
    for x, y, z in zip(a.state_dict().values(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(x, y) and torch.equal(x, z)
    d = build_model(name, in_channels=3, image_size=32, seed=8)
    assert not torch.equal(next(a.parameters()), next(d.parameters()))


def test_initial_weights_follow_the_default_laws() -> None:
    model = build_model("resnet20", in_channels=3, image_size=32, seed=0)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            bound = 1 / m.weight[0].numel() ** 0.5
            assert m.weight.abs().max() <= bound and m.weight.std() > bound / 3
        elif isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
            assert torch.equal(m.running_var, torch.ones_like(m.running_var)) and int(m.num_batches_tracked) == 0


def test_meta_device_builds_draw_nothing_and_need_no_seed() -> None:
    before = torch.random.get_rng_state()
    with torch.device("meta"):
        model = build_model("lenet300100")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert torch.equal(before, torch.random.get_rng_state())


@pytest.mark.parametrize("kwargs, word", [({}, "needs seed= or generator="),
                                          ({"seed": 0, "generator": torch.Generator()}, "not both"),
                                          ({"seed": -1}, "seed must be"), ({"seed": 1.5}, "seed must be"),
                                          ({"generator": 3}, "generator must be")])
def test_missing_or_conflicting_seed_is_an_input_error(kwargs: dict, word: str) -> None:
    with pytest.raises(InputError, match=word):
        build_model("lenet300100", **kwargs)
