"""The ticket-transfer table: test accuracy per (source configuration, target configuration, ticket kind).

Morcos, Yu, Paganini, Tian 2019 ("One ticket to win them all", NeurIPS) compare a ticket drawn on one
configuration (dataset, optimiser) and trained on another with the ticket drawn on the target itself and
with random tickets of the same per-layer density. Here a *configuration* is ``dataset/optimizer`` (e.g.
``mnist/sgd``), read from each run directory, and every finished run below the given paths becomes one
observation of a kind:

* ``transferred``: a ``transfer`` run whose source configuration differs from its own;
* ``target-drawn``: a ``transfer`` run whose source was drawn on its own configuration (the target's ticket,
  trained exactly like the transferred ones);
* ``shuffled``: a ``transfer`` run with ``transfer_shuffle`` (the source's mask permuted within each layer);
* ``reinit``: a ``transfer`` run with ``transfer_weights = init`` (the source's mask, this run's own init);
* any other method (the IMP runs that drew the tickets, a dense baseline): its method name, with source =
  target = its own configuration.

Rows group the observations (one per seed) and report the mean and sample standard deviation of the test
accuracy in percent; a group of one run has no standard deviation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from strongticket.errors import InputError
from strongticket.files import read_json_object
from strongticket.report.runs import find_runs
from strongticket.report.runs import to_csv as _to_csv
from strongticket.report.runs import to_markdown as _to_markdown

# ticket kinds in the order the table lists them within a (source, target) pair
KIND_ORDER = ("target-drawn", "transferred", "reinit", "shuffled", "imp", "imp-rewind", "dense")

COLUMNS = ["source", "target", "kind", "runs", "density", "accuracy_mean", "accuracy_std", "seeds"]


def _number(v: Any, key: str, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{where!r} is damaged: {key} must be a number, got {v!r}")
    return float(v)


def ticket_kind(summary: dict[str, Any], source: str, target: str) -> str:
    """The kind of one run (see the module docstring)."""
    if summary.get("method") != "transfer":
        return str(summary.get("method"))
    if summary.get("transfer_shuffle"):
        return "shuffled"
    if summary.get("transfer_weights") == "own-init":
        return "reinit"
    return "target-drawn" if source == target else "transferred"


def transfer_runs(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """One record per finished run at or below ``paths``: run, seed, source, target, kind, density, accuracy.

    Raises
    ------
    InputError
        No finished run under ``paths``, or a ``summary.json``/``config.json`` whose fields have the wrong
        types (the file and the field are named).
    """
    out = []
    for run in find_runs(paths):
        where = str(run / "summary.json")
        s = read_json_object(run / "summary.json", InputError)
        cfg_path = run / "config.json"
        if not cfg_path.is_file():
            raise InputError(f"{str(run)!r} has a summary.json but no config.json; it is not a run directory")
        cfg = read_json_object(cfg_path, InputError).get("config", {})
        target = f"{cfg.get('data', {}).get('dataset')}/{cfg.get('optim', {}).get('optimizer')}"
        if s.get("method") == "transfer":
            source = f"{s.get('transfer_source_dataset')}/{s.get('transfer_source_optimizer')}"
        else:
            source = target
        out.append({"run": str(run), "seed": cfg.get("seed"), "source": source, "target": target,
                    "kind": ticket_kind(s, source, target),
                    "density": _number(s.get("density"), "density", where),
                    "accuracy": _number(s.get("test_accuracy"), "test_accuracy", where)})
    return out


def transfer_table(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group :func:`transfer_runs` records by (source, target, kind): count, mean density, accuracy mean ± std.

    Accuracies are in percent; ``accuracy_std`` is the sample standard deviation (``None`` for one run).
    Rows are sorted by target, then source (the target's own configuration first), then kind
    (:data:`KIND_ORDER`).
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["source"], r["target"], r["kind"]), []).append(r)
    rows = []
    for (source, target, kind), rs in groups.items():
        acc = [100 * r["accuracy"] for r in rs if r["accuracy"] is not None]
        dens = [r["density"] for r in rs if r["density"] is not None]
        mean = sum(acc) / len(acc) if acc else None
        std = math.sqrt(sum((a - mean) ** 2 for a in acc) / (len(acc) - 1)) if len(acc) > 1 else None
        rows.append({"source": source, "target": target, "kind": kind, "runs": len(rs),
                     "density": sum(dens) / len(dens) if dens else None, "accuracy_mean": mean,
                     "accuracy_std": std, "seeds": ",".join(sorted(str(r["seed"]) for r in rs))})

    def order(row: dict[str, Any]) -> tuple:
        k = KIND_ORDER.index(row["kind"]) if row["kind"] in KIND_ORDER else len(KIND_ORDER)
        return row["target"], row["source"] != row["target"], row["source"], k, row["kind"]

    return sorted(rows, key=order)


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The grouped table as GitHub markdown, accuracy as ``mean ± std`` (percent)."""
    shown = [{**r, "accuracy": _pm(r)} for r in rows]
    cols = ["source", "target", "kind", "runs", "density", "accuracy"]
    return _to_markdown(shown, cols).replace("| accuracy |", "| test accuracy (%) |", 1)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The grouped table as CSV (columns :data:`COLUMNS`)."""
    return _to_csv(rows, COLUMNS)


def _pm(r: dict[str, Any]) -> str:
    if r["accuracy_mean"] is None:
        return ""
    if r["accuracy_std"] is None:
        return f"{r['accuracy_mean']:.2f}"
    return f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f}"
