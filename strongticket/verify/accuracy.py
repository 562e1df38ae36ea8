"""Task accuracy of a ticket next to its target's, on the same test tensors."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Fraction of rows of ``x`` (N, ...) whose argmax output equals ``y`` (N,)."""
    module.eval()
    correct = 0
    dtype = next(module.parameters()).dtype
    for s in range(0, x.shape[0], batch):
        out = module(x[s:s + batch].to(dtype))
        correct += int((out.argmax(dim=1) == y[s:s + batch]).sum())
    return correct / max(1, x.shape[0])


@torch.no_grad()
def agreement(f: nn.Module, g: nn.Module, x: torch.Tensor, batch: int = 1000) -> float:
    """Fraction of rows of ``x`` on which ``f`` and ``g`` predict the same class."""
    same = 0
    df, dg = next(f.parameters()).dtype, next(g.parameters()).dtype
    for s in range(0, x.shape[0], batch):
        xb = x[s:s + batch]
        same += int((f(xb.to(df)).argmax(1) == g(xb.to(dg)).argmax(1)).sum())
    return same / max(1, x.shape[0])
