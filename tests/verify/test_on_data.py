"""verify on a test split: one evaluation of target and ticket gives both accuracies and the data error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strongticket.verify.accuracy import accuracy
from strongticket.verify.measure import compare_on, error_on
from strongticket.verify.report import verify_report


def _net(seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return m.eval()


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_compare_on_gives_the_numbers_of_accuracy_and_error_on(norm) -> None:
    f, g = _net(0), _net(1)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(700, 6, generator=gen)  # float32 rows, cast as accuracy and the report cast them
    y = torch.randint(0, 4, (700,), generator=gen)
    on = compare_on(f, g, x, y, batch=256, norm=norm)
    assert on.target_accuracy == accuracy(f, x, y) and on.ticket_accuracy == accuracy(g, x, y)
    assert on.target_accuracy != on.ticket_accuracy  # two different networks: a swap would show
    assert on.error == error_on(f, g, x.double(), batch=256, norm=norm)


def _cnn_ticket():
    from strongticket.construct import cnn2l

    g = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(3 * 4 * 4, 10, bias=False))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.rand(p.shape, generator=g) - 0.5)
    return cnn2l.construct(m.eval(), per_weight_eps=0.01, samples=8, input_shape=(1, 8, 8), seed=1,
                           nonneg_input=True, strict=False)


@pytest.mark.parametrize("radius", [1.0, 0.5])
def test_the_data_bound_is_certified_at_the_data_radius(radius) -> None:
    from strongticket.construct import cnn2l

    ticket = _cnn_ticket()
    report = verify_report(ticket, radius=radius, count=20, restarts=1, steps=2, dataset="digits")
    assert report["data_radius_linf"] == 1.0
    assert report["certified_linf"] == cnn2l.certified_linf(ticket, radius).bound
    assert report["certified_data_linf"] == cnn2l.certified_linf(ticket, 1.0).bound
    if radius != 1.0:
        assert report["certified_data_linf"] > report["certified_linf"]  # the two radii give two bounds
