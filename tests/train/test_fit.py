"""Tests of :func:`strongticket.train.loop.fit`, the one training loop for callers without a run directory."""

from __future__ import annotations

import pytest
import torch

from strongticket.errors import InputError
from strongticket.train.config import OptimConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import fit


def _mlp(seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * 0.2)
    return net


def test_fit_trains_in_place_and_returns_the_model_in_eval_mode() -> None:
    ds = load_dataset("digits").subset(400, 200, seed=0)
    net = _mlp(0)
    before = (net(ds.test_x).argmax(1) == ds.test_y).float().mean()
    out = fit(net, ds, OptimConfig(optimizer="adam", lr=1e-2, epochs=40), seed=0)
    assert out is net and not net.training
    after = (net(ds.test_x).argmax(1) == ds.test_y).float().mean()
    assert after > 0.8 > before


def test_fit_is_a_function_of_its_seed() -> None:
    ds = load_dataset("digits").subset(300, 50, seed=0)
    cfg = OptimConfig(optimizer="sgd", lr=0.1, epochs=2)
    a, b, c = (fit(_mlp(0), ds, cfg, batch_size=32, seed=s) for s in (1, 1, 2))
    wa, wb, wc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_fit_rejects_a_bad_batch_size(batch_size: object) -> None:
    ds = load_dataset("digits").subset(10, 10, seed=0)
    with pytest.raises(InputError, match="batch_size"):
        fit(_mlp(0), ds, OptimConfig(epochs=1), batch_size=batch_size)  # type: ignore[arg-type]
