"""Unit results -> one comparison table (mean ± std over seeds) and its three figures.

One row per (row label, requested density): how many seeds finished, whether the method needs training, the
size of the network the ticket is cut from, the parameters it keeps, its density, its test accuracy, the
target's, for a construction its measured and certified errors to the target, and its wall time. Rows are
ordered constructions first, then the dense target, then the finders, each by label and density.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strongticket.errors import InputError

#: the table's columns, in order: (key, header)
COLUMNS = (("label", "method"), ("kind", "kind"), ("training", "needs training"), ("seeds", "seeds"),
           ("network_params", "network params"), ("ticket_params", "ticket params"), ("density", "density"),
           ("accuracy", "accuracy % (mean ± std)"), ("target_accuracy", "target accuracy %"),
           ("error_measured", "measured error (l_inf, test images)"),
           ("error_adversarial", "adversarial error (l_inf)"), ("error_certified", "certified bound"),
           ("wall_time_s", "wall time s"), ("device", "device"))

_ORDER = {"construct": 0, "dense": 1, "find": 2}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def aggregate(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (label, requested density) over the seeds; numbers are means, accuracy also has a std.

    Raises
    ------
    InputError
        Results of different tasks (a row label that appears with two methods) cannot be tabulated together.
    """
    groups: dict[tuple[str, float | None], list[dict[str, Any]]] = {}
    methods: dict[str, str] = {}
    for r in results:
        if methods.setdefault(r["label"], r["method"]) != r["method"]:
            raise InputError(f"row {r['label']!r} holds results of two methods ({methods[r['label']]} and "
                             f"{r['method']}): these results come from different comparisons")
        groups.setdefault((r["label"], r["requested_density"] if r["kind"] == "find" else None), []).append(r)
    rows = []
    for (label, requested), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        accs = [100 * r["accuracy"] for r in rs if r.get("accuracy") is not None]
        acc_m, acc_s = _mean_std(accs) if accs else (None, None)
        row: dict[str, Any] = {"label": label if requested is None else f"{label} @ {requested:g}",
                               "row": label, "requested_density": requested, "method": rs[0]["method"],
                               "kind": rs[0]["kind"], "training": "yes" if rs[0]["needs_training"] else "no",
                               "seeds": len(rs), "seed_list": [r["seed"] for r in rs],
                               "accuracy_mean": acc_m, "accuracy_std": acc_s,
                               "accuracy": "" if acc_m is None else f"{acc_m:.2f} ± {acc_s:.2f}"}
        for key in ("network_params", "ticket_params", "density", "target_accuracy", "error_measured",
                    "error_adversarial", "error_certified", "wall_time_s", "random_width"):
            vals = [r[key] for r in rs if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
            row[key] = sum(vals) / len(vals) if vals else None
        if row["target_accuracy"] is not None:
            row["target_accuracy"] *= 100
        row["certified_norm"] = rs[0].get("certified_norm")
        row["device"] = ",".join(sorted({str(r["device"]) for r in rs if r.get("device")}))
        row["warnings"] = sum(len(r.get("warnings") or []) for r in rs)
        rows.append(row)
    return sorted(rows, key=lambda r: (_ORDER.get(r["kind"], 3), r["row"], -(r["requested_density"] or 0)))


def _cell(key: str, v: Any) -> str:
    if v is None:
        return ""
    if key in ("network_params", "ticket_params"):
        return f"{v / 1e6:.3g} M" if v >= 1e6 else f"{v / 1e3:.3g} k" if v >= 1e3 else f"{v:.0f}"
    if key == "target_accuracy":
        return f"{v:.2f}"
    if key == "wall_time_s":
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def to_markdown(rows: Sequence[dict[str, Any]], *, timing: bool = True) -> str:
    """The table as GitHub markdown (``timing=False`` leaves out wall time and device, which differ between
    machines and runs: what two runs of one configuration must agree on)."""
    cols = [c for c in COLUMNS if timing or c[0] not in ("wall_time_s", "device")]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = []
        for key, _ in cols:
            text = _cell(key, r.get(key))
            if key == "error_certified" and text and r.get("certified_norm") == "l2":
                text += " (l2)"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The table as CSV with raw numbers (accuracy as mean and std columns)."""
    keys = ["label", "row", "method", "kind", "training", "seeds", "requested_density", "network_params",
            "ticket_params", "density", "accuracy_mean", "accuracy_std", "target_accuracy", "error_measured",
            "error_adversarial", "error_certified", "certified_norm", "random_width", "wall_time_s", "device", "warnings"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- figures


def _save(fig: Any, path: Path) -> Path:
    from strongticket.files import save_figure_atomic

    return save_figure_atomic(fig, path, dpi=120)


def _finish(fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    """Log x axis, labels, grid, legend (when anything was drawn); save ``fig`` to ``path`` atomically."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines or ax.containers:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _series(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["row"], []).append(r)
    return out


def plot_figures(rows: Sequence[dict[str, Any]], folder: str | os.PathLike[str], title: str = "") -> list[Path]:
    """Write the three figures into ``folder``; return their paths.

    * ``accuracy_vs_params.png``: test accuracy (mean ± std) against the ticket's remaining parameters (log x),
      constructed tickets as filled squares, found ones as lines over their densities;
    * ``error_vs_width.png``: for constructions, measured and certified errors against the random network's
      size (log-log);
    * ``time_vs_accuracy.png``: wall time (log) against accuracy, every row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, rs in sorted(_series(rows).items()):
        rs = sorted(rs, key=lambda r: r["ticket_params"] or 0)
        rs = [r for r in rs if r["accuracy_mean"] is not None and r["ticket_params"]]
        if not rs:
            continue
        xs = [r["ticket_params"] for r in rs]
        ys = [r["accuracy_mean"] for r in rs]
        es = [r["accuracy_std"] for r in rs]
        style = {"marker": "s", "linestyle": "none"} if rs[0]["kind"] == "construct" else \
            {"marker": "*", "linestyle": "none", "markersize": 12} if rs[0]["kind"] == "dense" else {"marker": "o"}
        ax.errorbar(xs, ys, yerr=es, label=label, capsize=3, **style)
    paths.append(_finish(fig, ax, folder / "accuracy_vs_params.png", "remaining parameters of the ticket",
                         "test accuracy (%)",
                         f"{title}: accuracy vs remaining parameters" if title else "accuracy vs remaining parameters"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if r["kind"] != "construct" or not r["network_params"] or r["error_measured"] is None:
            continue
        line = ax.plot([r["network_params"]], [r["error_measured"]], marker="o", linestyle="none",
                       label=f"{r['row']}: measured")[0]
        if r["error_certified"] is not None:
            ax.plot([r["network_params"]], [r["error_certified"]], marker="^", linestyle="none",
                    color=line.get_color(), label=f"{r['row']}: certified ({r['certified_norm']})")
    ax.set_yscale("log")
    paths.append(_finish(fig, ax, folder / "error_vs_width.png", "random network parameters",
                         "output error to the target", "constructed tickets: error vs width"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, rs in sorted(_series(rows).items()):
        pts = [(r["wall_time_s"], r["accuracy_mean"]) for r in rs if r["wall_time_s"] and r["accuracy_mean"] is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle="none", label=label)
    paths.append(_finish(fig, ax, folder / "time_vs_accuracy.png",
                         "wall time (s; constructions exclude the target's training)", "test accuracy (%)",
                         "wall time vs accuracy"))
    return paths
