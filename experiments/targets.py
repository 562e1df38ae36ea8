"""Training of the target networks the experiments prune random networks into (shared by the scripts here).

Uses the library's one training loop (:func:`strongticket.train.loop.fit`), so a target is the same function
of its seed as a ``strongticket train`` run with the same optimiser settings.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from strongticket.train.config import OptimConfig
from strongticket.train.data import Dataset
from strongticket.train.loop import fit
from strongticket.verify.accuracy import accuracy


def train_adam(model: torch.nn.Module, ds: Dataset, *, epochs: int, seed: int, log: Callable[[str], None],
               label: str = "", batch: int = 128, lr: float = 1e-3) -> torch.nn.Module:
    """Train ``model`` on ``ds`` (a :func:`strongticket.train.data.load_dataset` result) with Adam for ``epochs``
    epochs of ``batch`` examples, data order seeded by ``seed``; log the final test accuracy; return it in
    eval mode."""
    fit(model, ds, OptimConfig(optimizer="adam", lr=lr, epochs=epochs), batch_size=batch, seed=seed)
    log(f"{label}{epochs} epochs: test accuracy {accuracy(model, ds.test_x, ds.test_y):.4f}")
    return model
