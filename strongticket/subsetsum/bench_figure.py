"""The figure of ``strongticket rss bench`` in MRSS mode: median ℓ∞ error against n, per dimension."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from strongticket.files import save_figure_atomic
from strongticket.subsetsum.benchmark import MrssBenchRow


def plot_mrss_bench(dest: str | Path, rows: Sequence[MrssBenchRow]) -> Path:
    """Write a PNG (atomically) of median error vs n, one panel per d, ``mrss_search`` beside the plain
    descent (max error as a dotted line, CP-SAT as crosses where it ran); return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r.d for r in rows})
    fig, axes = plt.subplots(1, len(dims), figsize=(5.5 * len(dims), 4.4), squeeze=False)
    for ax, d in zip(axes[0], dims):
        cell = sorted((r for r in rows if r.d == d), key=lambda r: r.n)
        ns = [r.n for r in cell]
        ax.plot(ns, [r.descent_median for r in cell], "o-", color="tab:gray", label="descent median")
        ax.plot(ns, [r.descent_max for r in cell], ":", color="tab:gray", label="descent max")
        ax.plot(ns, [r.search_median for r in cell], "o-", color="tab:blue", label="mrss_search median")
        ax.plot(ns, [r.search_max for r in cell], ":", color="tab:blue", label="mrss_search max")
        cp = [r for r in cell if r.cpsat_median is not None]
        if cp:
            ax.plot([r.n for r in cp], [r.cpsat_median for r in cp], "x", color="tab:red", markersize=9,
                    label=f"CP-SAT median ({cp[0].cpsat_limit:g} s, {cp[0].cpsat_targets} targets)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("candidates n")
        ax.set_ylabel("ℓ∞ error")
        ax.set_title(f"d = {d}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("MRSS, normally-scaled normal candidates, targets U[-1, 1]^d")
    fig.tight_layout()
    return save_figure_atomic(fig, dest, dpi=110)
