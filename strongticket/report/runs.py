"""Collect training runs' ``summary.json`` files into one table (markdown/CSV) and an accuracy-vs-density plot."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strongticket.errors import InputError
from strongticket.files import read_json_object

# summary.json fields that must be numbers (or absent) for the table and the plot
NUMERIC = ("density", "sparsity", "test_accuracy", "reinit_test_accuracy", "params", "nonzero_params", "wall_time_s")

COLUMNS = ["run", "method", "model", "width", "dataset", "density", "sparsity", "accuracy", "reinit_accuracy", "params",
           "nonzero_params", "wall_time_s", "collapsed"]


def report_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The paths a report was given, as :class:`~pathlib.Path`; an empty one is refused.

    ``Path("")`` is the current folder, which the user did not name: scanning it would tabulate whatever runs
    it holds.

    Raises
    ------
    InputError
        One line when a path is the empty string, or when there is none.
    """
    if not paths:
        raise InputError("no run path given: name a run, comparison or ticket directory, or a folder holding them")
    if any(os.fspath(p) == "" for p in paths):
        raise InputError(f"an empty path names no run, comparison or ticket (give '.' for the current folder), "
                         f"got {[os.fspath(p) for p in paths]}")
    return [Path(p) for p in paths]


def find_runs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Return every run directory (a folder with ``summary.json``) at or below ``paths``, sorted."""
    found: set[Path] = set()
    for p in report_paths(paths):
        if not p.exists():
            raise InputError(f"run path {str(p)!r} does not exist")
        if (p / "summary.json").is_file():
            found.add(p)
        elif p.is_dir():
            found |= {s.parent for s in p.rglob("summary.json")}
    if not found:
        raise InputError(f"no finished runs (summary.json) under {', '.join(map(str, paths))}")
    return sorted(found)


def collect(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Return one row per finished run: the columns of :data:`COLUMNS`, sorted by method then density."""
    rows = []
    for run in find_runs(paths):
        s = read_json_object(run / "summary.json", InputError)
        for key in NUMERIC:
            v = s.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InputError(f"{str(run / 'summary.json')!r} is damaged: {key} must be a number, got {v!r}")
        width = None
        if (run / "config.json").is_file():
            width = read_json_object(run / "config.json", InputError).get("config", {}).get("model", {}).get("width")
        rows.append({"run": str(run), "method": s.get("method"), "model": s.get("model"), "width": width,
                     "dataset": s.get("dataset"),
                     "density": s.get("density"), "sparsity": s.get("sparsity"), "accuracy": s.get("test_accuracy"),
                     "reinit_accuracy": s.get("reinit_test_accuracy"), "params": s.get("params"),
                     "nonzero_params": s.get("nonzero_params"), "wall_time_s": s.get("wall_time_s"),
                     "collapsed": ",".join(s.get("collapsed", [])) or ""})
    return sorted(rows, key=lambda r: (str(r["model"]), str(r["dataset"]), str(r["method"]), -(r["density"] or 0)))


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """Return ``rows`` as a GitHub markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """Return ``rows`` as CSV text with a header line."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def plot_accuracy_vs_density(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write a PNG of test accuracy against density (log scale), one line per method and model/dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from strongticket.files import save_figure_atomic

    groups: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["density"] is None or r["accuracy"] is None:
            continue
        # runs of different widths are different networks: one series each
        width = f" x{r['width']:g}" if isinstance(r.get("width"), (int, float)) else ""
        key = f"{r['method']} ({r['model']}{width}/{r['dataset']})"
        groups.setdefault(key, []).append((r["density"], r["accuracy"]))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key, pts in sorted(groups.items()):
        pts.sort()
        if key.startswith("dense ") and all(p[0] == 1 for p in pts):
            # the dense reference is one point at density 1: draw it across the plot
            ax.axhline(100 * max(p[1] for p in pts), linestyle="--", color="grey", label=key)
            continue
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=key)
    ax.set_xscale("log")
    ax.set_xlabel("density (fraction of prunable weights kept)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=120)
