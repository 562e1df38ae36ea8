"""The demo's figure: per-weight errors of each ticket against eps', and ticket logits against target logits."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


def plot_demo(path: Path, errors: Mapping[str, np.ndarray], eps: float, target_logits: np.ndarray,
              ticket_logits: Mapping[str, np.ndarray], title: str) -> None:
    """Write a two-panel PNG to ``path`` (atomically).

    Parameters
    ----------
    path : Path
        The PNG file.
    errors : mapping of label to float array, shape (W,)
        Per-weight errors ``|subset sum - w|`` of each ticket (weight units); drawn as log-scale histograms
        (floored at 1e-7 so that exact matches stay visible).
    eps : float
        The per-weight tolerance eps', drawn as a vertical line.
    target_logits : float array, shape (N, K)
        The target's outputs on the test inputs.
    ticket_logits : mapping of label to float array, shape (N, K)
        Each ticket's outputs on the same inputs, scattered against ``target_logits``.
    title : str
        The figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from strongticket.files import save_figure_atomic

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.9))
    floor = 1e-7
    top = max(eps * 10, max(float(e.max()) for e in errors.values()))
    bins = np.logspace(np.log10(floor), np.log10(top), 40)
    for label, e in errors.items():
        ax1.hist(np.maximum(e, floor), bins=bins, histtype="step", lw=1.5, label=label)
    ax1.axvline(eps, color="red", ls="--", lw=1, label=f"eps' = {eps:g}")
    ax1.set_xscale("log")
    ax1.set_xlabel("per-weight error |subset sum - w| (floored at 1e-7)")
    ax1.set_ylabel("target weights")
    ax1.legend(fontsize=8)
    for label, g_out in ticket_logits.items():
        ax2.scatter(target_logits.reshape(-1), g_out.reshape(-1), s=3, alpha=0.4, label=label)
    lo, hi = float(target_logits.min()), float(target_logits.max())
    ax2.plot([lo, hi], [lo, hi], color="grey", lw=1)
    ax2.set_xlabel("target logits (test digits)")
    ax2.set_ylabel("ticket logits")
    ax2.legend(fontsize=8, markerscale=3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)


__all__ = ["plot_demo"]
