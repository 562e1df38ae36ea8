"""Training of the target networks the experiments prune random networks into (shared by the scripts here)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from strongticket.verify.accuracy import accuracy


def train_adam(model: torch.nn.Module, ds, *, epochs: int, seed: int, log: Callable[[str], None],
               label: str = "", batch: int = 128, lr: float = 1e-3) -> torch.nn.Module:
    """Train ``model`` on ``ds`` (a :func:`strongticket.train.data.load_dataset` result) with Adam; data order
    from its own generator seeded by ``seed``. Logs the test accuracy after every epoch; returns it in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        perm = torch.randperm(ds.train_x.shape[0], generator=gen)
        model.train()
        for s in range(0, len(perm), batch):
            idx = perm[s:s + batch]
            loss = torch.nn.functional.cross_entropy(model(ds.train_x[idx]), ds.train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        log(f"{label}epoch {ep + 1}: test accuracy {accuracy(model, ds.test_x, ds.test_y):.4f}")
    return model.eval()
