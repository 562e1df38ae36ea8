"""cnn2l (da Cunha, Natale, Viennot 2022): whole CNN targets pruned from a random CNN twice as deep."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from strongticket.construct import cnn2l
from strongticket.errors import InfeasibleError, InputError
from strongticket.nets.spec import Conv2d, Linear
from strongticket.nets.zoo import build_model
from strongticket.ticket import Ticket


def _small_cnn(bias: bool = False, padding: int = 1, stride: int = 1) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, stride=stride, padding=padding, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(3, 2, 2, bias=bias), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3, bias=bias))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.rand(p.shape, generator=g) - 0.5)
    return m.eval()


@pytest.fixture(scope="module")
def ticket() -> Ticket:
    return cnn2l.construct(_small_cnn(), per_weight_eps=0.01, samples=10, input_shape=(1, 8, 8), seed=3,
                           strict=False)


def test_every_layer_is_a_random_pair(ticket):
    layers = ticket.spec.layers
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Conv2d", "Conv2d", "Pool", "Conv2d", "Conv2d", "Flatten", "Linear", "Linear"]
    assert layers[0].kernel_size == 1 and layers[0].activation == "relu"
    assert (layers[1].kernel_size, layers[1].padding, layers[1].activation) == (3, 1, "relu")
    H = ticket.provenance["block_size"]
    for name in ("layers.0.weight", "layers.3.weight"):  # univariate intermediate channels
        mask = ticket.masks[name].reshape(ticket.masks[name].shape[0], -1).numpy()
        rows, cols = np.nonzero(mask)
        assert np.array_equal(cols, rows // H)
    assert ticket.provenance["method"] == "dacunha2022"


def test_ticket_approximates_the_whole_target_within_its_certified_bound(ticket):
    target = _small_cnn().double()
    g = ticket.to_module(torch.float64)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((64, 1, 8, 8), generator=gen, dtype=torch.float64) * 2 - 1
    x[:8] = torch.sign(x[:8])  # corners of the l_inf ball
    with torch.no_grad():
        err = float((g(x) - target(x)).abs().max())
    bound = ticket.provenance["certified_linf"]["bound"]
    assert err <= bound
    assert err <= 0.05  # a few eps' * fan-in: the ticket is close, not only bounded


def test_signed_inputs_need_the_negative_side():
    target = _small_cnn().double()
    x = torch.rand((16, 1, 8, 8), generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    one_side = cnn2l.construct(_small_cnn(), per_weight_eps=0.01, samples=10, input_shape=(1, 8, 8), seed=3,
                               nonneg_input=True, strict=False)
    assert one_side.provenance["layers"][0]["negative_side"] is False
    assert one_side.provenance["layers"][1]["negative_side"] is False  # after a ReLU and a max pool
    err_one = float((one_side.to_module(torch.float64)(x) - target(x)).abs().max())
    both = cnn2l.construct(_small_cnn(), per_weight_eps=0.01, samples=10, input_shape=(1, 8, 8), seed=3,
                           strict=False)
    err_both = float((both.to_module(torch.float64)(x) - target(x)).abs().max())
    assert err_both <= 0.05 < err_one


def test_ticket_regenerates_bit_for_bit_from_its_directory(ticket, tmp_path):
    ticket.save(tmp_path / "t")
    loaded = Ticket.load(tmp_path / "t")
    assert loaded.equals(ticket)
    a, b = ticket.to_module().state_dict(), loaded.to_module().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kept_weights_are_the_random_weights(ticket):
    state = ticket.to_module().state_dict()
    spec = ticket.spec
    for name, shape in spec.parameter_shapes().items():
        drawn = ticket.distribution.tensor(name, shape, ticket.seed, fan_in=spec.fan_in(name))
        mask = ticket.masks[name]
        assert torch.equal(state[name][mask], drawn[mask])
        assert not state[name][~mask].any()
    again = Ticket.from_state_dict(state, spec, ticket.distribution, ticket.seed)
    assert all(torch.equal(again.masks[k], ticket.masks[k] & (state[k] != 0)) for k in state)


def test_recorded_errors_match_the_masks(ticket):
    for row, layer in zip(ticket.provenance["layers"], cnn2l.pair_kernels(ticket)):
        worst = np.abs(layer["pos"] - layer["kernel"])
        if layer["negative_side"]:
            worst = np.maximum(worst, np.abs(layer["neg"] + layer["kernel"]))
        assert float(worst.max()) == pytest.approx(row["errors"]["max"], abs=1e-12)


@pytest.mark.parametrize("name,size", [("lenet5", 16), ("conv2", 8)])
def test_zoo_targets_become_whole_tickets(name, size):
    target = build_model(name, width=0.1, image_size=size, bias=False, seed=0)
    t = cnn2l.construct(target, per_weight_eps=0.01, samples=10, input_shape=(1, size, size), nonneg_input=True,
                        seed=0, strict=False)
    n_param = sum(isinstance(layer, (Conv2d, Linear)) for layer in target_spec_layers(t))
    assert sum(isinstance(layer, (Conv2d, Linear)) for layer in t.spec.layers) == 2 * n_param
    x = torch.rand((8, 1, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        err = float((t.to_module(torch.float64)(x) - target.double()(x)).abs().max())
    assert err <= t.provenance["certified_linf"]["bound"]
    for layer in cnn2l.pair_kernels(t, target):  # recomputed from the regenerated weights and the masks
        w = layer["kernel"]
        assert np.linalg.norm(layer["pos"] - w) / np.linalg.norm(w) < 0.05


def target_spec_layers(t: Ticket):
    from strongticket.nets.spec import NetSpec

    return NetSpec.from_dict(t.provenance["target"]["spec"]).layers


def test_biases_are_exact_at_the_borders():
    target = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=True))
    with torch.no_grad():
        target[0].bias.copy_(torch.tensor([0.7, -0.4]))
    t = cnn2l.construct(target, per_weight_eps=1e-3, samples=12, input_shape=(1, 6, 6), nonneg_input=True,
                        strict=False)
    (layer,) = cnn2l.pair_kernels(t, target)
    a = torch.from_numpy(layer["pos"])
    x = torch.rand((4, 1, 6, 6), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = t.to_module(torch.float64)(x)
    want = F.conv2d(x, a[:, :1], a[:, 1, 1, 1], padding=1)  # the selected kernel and bias, every position
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert float((got - target.double()(x)).abs().max()) <= 1e-3 * 10


@pytest.mark.parametrize("module,match", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), "BatchNorm2d .*fold it"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)), "dilation"),
    (nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), "groups=2"),
    (nn.Sequential(nn.ConvTranspose2d(1, 2, 3)), "transposed convolution ConvTranspose2d"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), "padding_mode='reflect'"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding="same")), "padding='same'"),
    (nn.Sequential(nn.Conv1d(1, 2, 3)), "Conv1d"),
    (nn.Sequential(nn.Conv2d(1, 2, (3, 1))), "non-square kernel_size"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh()), "activation 'tanh'"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(7, 3)), "layer 2: Linear\\(7, 3\\)"),
])
def test_unsupported_targets_are_refused_by_name(module, match):
    with pytest.raises(InputError, match=match):
        cnn2l.construct(module, per_weight_eps=0.01, samples=8, input_shape=(1, 8, 8))


def test_bad_arguments_are_refused():
    m = _small_cnn()
    with pytest.raises(InputError, match="eps"):
        cnn2l.construct(m, samples=8, input_shape=(1, 8, 8))
    with pytest.raises(InputError, match="input_shape"):
        cnn2l.construct(m, per_weight_eps=0.01, samples=8)
    with pytest.raises(InputError, match="objective"):
        cnn2l.construct(m, per_weight_eps=0.01, samples=8, input_shape=(1, 8, 8), objective="fast")
    with pytest.raises(InputError, match="block_size"):
        cnn2l.construct(m, per_weight_eps=0.01, samples=8, input_shape=(1, 8, 8), block_size=4)


def test_strict_raises_on_misses_and_names_them():
    with pytest.raises(InfeasibleError, match="miss per-weight eps"):
        cnn2l.construct(_small_cnn(), per_weight_eps=1e-6, samples=4, input_shape=(1, 8, 8),
                        seed=0, nonneg_input=True, wider_pool=False)


def test_eps_gives_the_l1_linf_per_weight_budget():
    target = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 2, bias=False))
    t = cnn2l.construct(target, eps=0.5, input_shape=(1, 4, 4), nonneg_input=True, strict=False)
    assert t.provenance["per_weight_eps"] == pytest.approx(0.5 / (2 * 2 * 18))  # L = 2, d_max = 18 (the Linear)
    assert t.provenance["samples_per_weight"] == t.provenance["theory_samples_per_weight"]


def test_per_layer_eps_applies_to_its_own_layer():
    target = _small_cnn()
    t = cnn2l.construct(target, per_weight_eps=[1e-3, 1e-3, 0.2], samples=10, input_shape=(1, 8, 8),
                        nonneg_input=True, seed=3, strict=False)
    rows = t.provenance["layers"]
    assert [r["per_weight_eps"] for r in rows] == [1e-3, 1e-3, 0.2]
    for i, eps in enumerate((1e-3, 1e-3, 0.2)):
        err = t.arrays[f"errors.layer{i}.pos"].numpy()
        assert rows[i]["errors"]["above_eps"] == int((err > eps).sum())
    assert rows[2]["wider_pool"]["instances"] < rows[1]["wider_pool"]["instances"]  # retried against its own eps
    with pytest.raises(InputError, match="one value per Conv2d/Linear layer"):
        cnn2l.construct(target, per_weight_eps=[1e-3, 1e-3], samples=10, input_shape=(1, 8, 8))
    with pytest.raises(InputError, match=r"per_weight_eps\[1\]"):
        cnn2l.construct(target, per_weight_eps=[1e-3, 2.0, 0.1], samples=10, input_shape=(1, 8, 8))
