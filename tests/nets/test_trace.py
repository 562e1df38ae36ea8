"""Tracing: supported targets read into a NetSpec and rebuilt to the same function, clear errors for the rest."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.spec import Conv2d, Flatten, Linear, Pool
from strongticket.nets.trace import trace_module


class FC2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 7, bias=False)
        self.fc2 = nn.Linear(7, 3)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


def _lenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3),
                         nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(6, 5), nn.ReLU(),
                         nn.Linear(5, 3))


def test_traced_custom_forward_rebuilds_the_same_function():
    torch.manual_seed(0)
    m = FC2().eval()
    t = trace_module(m)
    assert [type(layer) for layer in t.spec.layers] == [Flatten, Linear, Linear]
    assert t.spec.layers[1].activation == "relu" and t.spec.layers[2].bias
    net = t.spec.build()
    net.load_state_dict(t.state)
    x = torch.randn(5, 3, 4)
    assert torch.equal(net(x), m(x))


def test_traced_cnn_rebuilds_the_same_function_and_shapes():
    torch.manual_seed(0)
    m = _lenet().eval()
    t = trace_module(m, (1, 8, 8))
    assert t.spec.layer_shapes()[-1] == (3,)
    assert isinstance(t.spec.layers[0], Conv2d) and isinstance(t.spec.layers[1], Pool)
    net = t.spec.build()
    net.load_state_dict(t.state)
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(net(x), m(x), atol=1e-6)


@pytest.mark.parametrize("module, word", [
    (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), "BatchNorm1d"),
    (nn.Sequential(nn.Linear(4, 4), nn.Hardswish()), "Hardswish"),
    (nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), "groups=2"),
])
def test_unsupported_layers_are_named_with_what_is_supported(module, word):
    with pytest.raises(InputError, match=word) as info:
        trace_module(module, (2, 6, 6) if isinstance(module[0], nn.Conv2d) else None)
    assert "supported layers" in str(info.value)


def test_residual_addition_is_refused():
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.a(x)

    with pytest.raises(InputError, match="residual"):
        trace_module(Res())


def test_public_names_are_importable_from_the_package():
    import strongticket.nets as nets

    for name in ("NetSpec", "TracedNet", "trace_module", "spec_from_module", "activation", "Activation"):
        assert hasattr(nets, name), name
