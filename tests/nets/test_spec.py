"""NetSpec: JSON round trip, the constant input channel, clear errors for bad shapes and activations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.spec import Conv2d, Linear, NetSpec, Pool
from strongticket.nets.trace import spec_from_module


def _lenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3),
                         nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(6, 5), nn.ReLU(),
                         nn.Linear(5, 3))


def test_spec_json_round_trip_is_identity():
    spec = spec_from_module(_lenet(), (1, 8, 8))
    assert isinstance(spec.layers[0], Conv2d) and isinstance(spec.layers[1], Pool)
    assert NetSpec.from_dict(spec.to_dict()) == spec


def test_input_constant_appends_a_one():
    spec = NetSpec((Linear(3, 1, activation="identity"),), input_constant=True)
    net = spec.build()
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[0.0, 0.0, 2.5]]))
    assert torch.equal(net(torch.randn(4, 2)), torch.full((4, 1), 2.5))


def test_bad_shapes_are_reported():
    with pytest.raises(InputError, match="expects inputs"):
        NetSpec((Linear(4, 3), Linear(5, 2)))
    with pytest.raises(InputError, match="activation"):
        Linear(2, 2, activation="swish")
