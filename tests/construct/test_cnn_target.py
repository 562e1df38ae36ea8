"""One reading of a CNN target for both CNN constructions (cnn2l and the L+1 CNN case)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from strongticket.construct import cnn2l, cnn_target, lplus1_conv
from strongticket.errors import InputError

SHAPE = (2, 6, 6)


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(27, 4), nn.ReLU(), nn.Linear(4, 2)).eval()


READERS = {"cnn2l": lambda m, shape=SHAPE: cnn2l.read_cnn_target(m, shape),
           "lplus1": lambda m, shape=SHAPE: lplus1_conv.read_target(m, shape)}


@pytest.mark.parametrize("who", sorted(READERS))
def test_batchnorm_is_refused_with_the_folding_formula_by_both(who) -> None:
    target = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2))
    with pytest.raises(InputError) as info:
        READERS[who](target)
    msg = str(info.value)
    assert msg.startswith(f"{who}: BatchNorm2d '1'") and "fold it" in msg and "\n" not in msg


@pytest.mark.parametrize("who", sorted(READERS))
@pytest.mark.parametrize("what,module_index,layer", [("weight", 4, 3), ("bias", 0, 0)])
def test_non_finite_parameters_are_refused_naming_the_layer(who, what, module_index, layer) -> None:
    target = _cnn()
    with torch.no_grad():
        getattr(target[module_index], what)[0] = float("nan")
    with pytest.raises(InputError) as info:
        READERS[who](target)
    msg = str(info.value)
    words = "non-finite weights" if what == "weight" else "a non-finite bias"
    assert msg == f"{who}: target layer {layer} ({module_index}.weight) has {words}"


@pytest.mark.parametrize("who", sorted(READERS))
def test_layers_that_do_not_chain_and_a_missing_shape_are_one_line(who) -> None:
    bad = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(7, 2))
    with pytest.raises(InputError, match=rf"^{who}: target: .*layer 2: Linear\(7, 2\)") as info:
        READERS[who](bad)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=rf"^{who}: input_shape is needed"):
        READERS[who](_cnn(), None)


def test_both_constructions_read_the_same_parameters() -> None:
    target = _cnn()
    read = cnn_target.read_layers(target, SHAPE, who="x", supported="y")
    two = cnn2l.read_cnn_target(target, SHAPE)
    one = lplus1_conv.read_target(target, SHAPE)
    assert [p.index for p in read.params] == [p.index for p in two.params] == [s.index for s in one.stages]
    assert [p.name for p in read.params] == [p.name for p in two.params] == [s.name for s in one.stages]
    for p, q, s in zip(read.params, two.params, one.stages):
        assert p.weight.dtype == np.float64 and np.array_equal(p.weight, q.weight)
        assert np.array_equal(p.weight.reshape(p.weight.shape[0], -1), s.weight)
        assert np.array_equal(p.bias, s.bias) and np.array_equal(p.bias, q.bias)
