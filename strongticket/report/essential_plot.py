"""The essential-sparsity figure: accuracy-vs-sparsity curves per pattern, and the detected points over training."""

from __future__ import annotations

from pathlib import Path

from strongticket.essential import EssentialResult


def plot_essential(result: EssentialResult, path: Path) -> None:
    """Write the figure of ``result`` to ``path`` as a PNG (atomically).

    Panels: (1) the trained model's test accuracy (%) against sparsity (fraction of prunable weights removed)
    for unstructured one-shot magnitude pruning and each N:M family, the named patterns (2:4, 4:8) ringed,
    the essential sparsity (dashed) and the knee (dotted) of the unstructured curve marked; with more than one
    snapshot, (2) the unstructured curve of every snapshot, coloured by epoch, and (3) the essential sparsity
    and knee of every pattern against the epoch.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from strongticket.files import save_figure_atomic

    snaps = result.snapshots
    several = len(snaps) > 1
    fig, axes = plt.subplots(1, 3 if several else 1, figsize=(15 if several else 5.5, 4.2), squeeze=False)
    ax = axes[0][0]
    final = result.final
    colours = {}
    for c in final.curves:
        style = {"lw": 1.5} if c.pattern == "unstructured" else {"lw": 1.2, "marker": "o", "ms": 3}
        (line,) = ax.plot(c.sparsity, [100 * a for a in c.accuracy], label=c.pattern, **style)
        colours[c.pattern] = line.get_color()
    for i, (name, p) in enumerate(final.points.items()):
        colour = colours.get(f"N:{name.split(':')[1]}")
        ax.scatter([p["sparsity"]], [100 * p["accuracy"]], s=70, facecolors="none", edgecolors=colour, lw=1.5)
        # 2:4 and 4:8 sit at the same sparsity: stack their labels
        ax.annotate(name, (p["sparsity"], 100 * p["accuracy"]), textcoords="offset points",
                    xytext=(-40, -14 - 10 * i), fontsize=8, color=colour)
    u = final.curve("unstructured")
    ax.axvline(u.essential, color="grey", ls="--", lw=1,
               label=f"essential ({'>= ' if u.censored else ''}{u.essential:.2f}, <= {100 * result.max_drop:g} pt)")
    if u.knee is not None:
        ax.axvline(u.knee, color="grey", ls=":", lw=1, label=f"knee ({u.knee:.2f})")
    ax.set_xlabel("sparsity (fraction of prunable weights removed)")
    ax.set_ylabel("test accuracy (%), no retraining")
    ax.set_title(f"{result.model} / {result.dataset}, epoch {final.epoch:g}", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    if several:
        ax2, ax3 = axes[0][1], axes[0][2]
        cmap = plt.get_cmap("viridis")
        last = max(s.epoch for s in snaps) or 1.0
        for s in snaps:
            c = s.curve("unstructured")
            ax2.plot(c.sparsity, [100 * a for a in c.accuracy], color=cmap(s.epoch / last), lw=1)
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, last))
        fig.colorbar(sm, ax=ax2, label="epoch")
        ax2.set_xlabel("sparsity")
        ax2.set_ylabel("test accuracy (%), unstructured")
        ax2.set_title("one-shot magnitude curve per snapshot", fontsize=10)
        epochs = [s.epoch for s in snaps]
        for c in final.curves:
            colour = colours[c.pattern]
            ax3.plot(epochs, [s.curve(c.pattern).essential for s in snaps], color=colour, marker="o", ms=3,
                     label=f"{c.pattern} essential")
            knees = [s.curve(c.pattern).knee for s in snaps]
            ax3.plot(epochs, [float("nan") if k is None else k for k in knees], color=colour, ls=":",
                     marker="x", ms=4, label=f"{c.pattern} knee")
        ax3.set_xlabel("epoch")
        ax3.set_ylabel("sparsity")
        ax3.set_ylim(0, 1)
        ax3.set_title("essential sparsity over training", fontsize=10)
        ax3.legend(fontsize=7)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)


__all__ = ["plot_essential"]
