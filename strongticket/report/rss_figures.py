"""Figures for ``strongticket rss curve``: success probability vs n, and the n it takes vs ε and d."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from strongticket.files import save_figure_atomic
from strongticket.subsetsum.curves import LinearFit, SuccessCurve
from strongticket.subsetsum.theory import lueker_sample_size


def plot_rss_curves(
    dest: str | Path,
    one_dim: Sequence[SuccessCurve],
    fits: dict[str, LinearFit],
    mrss: Sequence[SuccessCurve],
    mrss_fit: LinearFit | None,
    confidence: float,
) -> Path:
    """Write a 3-panel PNG to ``dest`` (atomically) and return its path.

    Panel 1: P(error <= ε) against n for every 1-D law and ε. Panel 2: required n against log2(1/ε)
    with the fitted lines, the counting lower bound n = log2(1/ε) and Lueker's sample size with C = 1
    (his constant is not known; the curve shows the shape, not a threshold). Panel 3: MRSS required n against
    d, with the counting lower bound d·log2(1/ε) and the d³·log(1/ε)·(log(1/ε) + log d) shape of
    Becchetti et al. (2022) scaled through the d = 1 point (its constant is unknown).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    styles = ["-", "--", ":", "-."]
    for ci, curve in enumerate(one_dim):
        for k, e in enumerate(curve.eps):
            ax.plot(curve.ns, curve.success[:, k], styles[ci % len(styles)], marker="o", ms=3,
                    color=f"C{k}", label=f"{curve.label}, ε={e:g}")
    ax.axhline(confidence, color="grey", lw=0.8)
    ax.set(xlabel="n (candidates)", ylabel="P(best error ≤ ε)", title=f"RSS success ({one_dim[0].trials} trials per n)")
    ax.legend(fontsize=7)

    ax = axes[1]
    for ci, curve in enumerate(one_dim):
        x = np.log2(1 / curve.eps)
        req = curve.required_n(confidence)
        ax.plot(x, req, "o", color=f"C{ci}", label=f"{curve.label}: measured")
        fit = fits.get(curve.label)
        if fit is not None and np.isfinite(fit.slope):
            ax.plot(x, fit.intercept + fit.slope * x, "-", color=f"C{ci}",
                    label=f"fit: slope {fit.slope:.2f}" + (f" [{fit.slope_ci[0]:.2f}, {fit.slope_ci[1]:.2f}]"
                                                              if np.all(np.isfinite(fit.slope_ci)) else ""))
    xs = np.log2(1 / one_dim[0].eps)
    ax.plot(xs, xs, "k--", lw=1, label="counting lower bound n = log2(1/ε)")
    lueker = [lueker_sample_size(float(e), 1.0 - confidence, C=1.0) for e in one_dim[0].eps]
    ax.plot(xs, lueker, ":", color="C3", label=f"Lueker Cor. 2.5, δ={1 - confidence:g}, C=1 (C unknown)")
    ax.set(xlabel="log2(1/ε)", ylabel=f"n needed for P ≥ {confidence:g}", title="required n vs ε (Lueker: linear)")
    ax.legend(fontsize=7)

    ax = axes[2]
    if mrss:
        ds = np.array([c.d for c in mrss])
        e = mrss[0].eps[0]
        req = np.array([c.required_n(confidence)[0] for c in mrss])
        ax.plot(ds, req, "o-", label=f"measured (ε={e:g})")
        ax.plot(ds, ds * np.log2(1 / e), "k--", lw=1, label="counting bound d·log2(1/ε)")
        shape = ds**3 * np.log(1 / e) * (np.log(1 / e) + np.log(ds))
        if np.isfinite(req[0]) and shape[0] > 0:
            ax.plot(ds, shape * req[0] / shape[0], ":", color="C3", label="theorem shape d³·log(1/ε)(log(1/ε)+log d), scaled")
        if mrss_fit is not None and np.isfinite(mrss_fit.slope):
            ci = (f" [{mrss_fit.slope_ci[0]:.2f}, {mrss_fit.slope_ci[1]:.2f}]"
                  if np.all(np.isfinite(mrss_fit.slope_ci)) else "")
            ax.set_title(f"MRSS: fitted exponent of d = {mrss_fit.slope:.2f}{ci}")
        ax.set_yscale("log")
        ax.set(xlabel="dimension d", ylabel=f"n needed for P ≥ {confidence:g}")
        ax.legend(fontsize=7)
    else:
        ax.set_axis_off()
    fig.tight_layout()
    return save_figure_atomic(fig, dest, dpi=110)
