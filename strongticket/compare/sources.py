"""Any mix of comparison, training-run and ticket directories -> unit results of one task.

``strongticket report`` tabulates what it is given in the comparison's table: a comparison directory
contributes its result files, a finished training run (``summary.json``) one found-ticket result, a ticket
directory (``ticket.json``) one constructed-ticket result (its accuracy only when its provenance records
one: ``strongticket verify --data`` measures it). Results of different tasks (dataset or model) are refused:
their accuracies do not compare.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strongticket.compare.runner import MARKER, OPTIONAL_FIELDS, RESULT_FIELDS, is_compare_dir, read_results
from strongticket.errors import InputError
from strongticket.files import read_json_object


def _blank(**values: Any) -> dict[str, Any]:
    out = {key: None for key in RESULT_FIELDS + OPTIONAL_FIELDS}
    out["warnings"] = []
    out.update(values)
    return out


def run_result(run: Path) -> tuple[dict[str, Any], tuple[Any, Any]]:
    """A finished training run as one result (kind ``find``, or ``dense``), with its task (dataset, model)."""
    s = read_json_object(run / "summary.json", InputError)
    seed = None
    if (run / "config.json").is_file():
        seed = read_json_object(run / "config.json", InputError).get("config", {}).get("seed")
    method = s.get("method")
    dense = method == "dense"
    return _blank(unit=str(run), kind="dense" if dense else "find", label="dense target" if dense else method,
                  method=method, seed=seed, requested_density=None if dense else s.get("target_density"),
                  needs_training=True, network_params=s.get("params"), ticket_params=s.get("nonzero_params"),
                  density=s.get("density"), accuracy=s.get("test_accuracy"), wall_time_s=s.get("run_seconds"),
                  device=s.get("device"), warnings=list(s.get("warnings", []))), (s.get("dataset"), s.get("model"))


def ticket_result(directory: Path) -> tuple[dict[str, Any], tuple[Any, Any]]:
    """A ticket directory as one result (kind ``construct``), with its task as far as its provenance says."""
    from strongticket.ticket import Ticket

    ticket = Ticket.load(directory, check_weights=False)
    p = ticket.provenance
    label = " ".join(str(x) for x in (p.get("method", "ticket"), p.get("objective")) if x)
    return _blank(unit=str(directory), kind="construct", label=label, method=p.get("method"),
                  seed=ticket.seed, needs_training=False, network_params=ticket.num_params,
                  ticket_params=ticket.num_kept, density=ticket.density, accuracy=p.get("test_accuracy"),
                  random_width=p.get("random_width"), wall_time_s=p.get("seconds"), device="cpu",
                  warnings=list(p.get("warnings", []))), (p.get("dataset"), p.get("model"))


def collect(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Every result under ``paths`` (comparison, run and ticket directories, or folders holding them).

    Raises
    ------
    InputError
        A path that does not exist or holds none of them; results of two different tasks.
    """
    results: list[dict[str, Any]] = []
    tasks: dict[tuple[Any, Any], str] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{str(p)!r} does not exist")
        found = _find(p)
        if not found:
            raise InputError(f"{str(p)!r} holds no comparison, finished run or ticket")
        for kind, d in found:
            if kind == "compare":
                cfg = read_json_object(d / MARKER, InputError)["config"]["train"]
                task = (cfg.get("data", {}).get("dataset", "mnist"), cfg.get("model", {}).get("model", "lenet300100"))
                results += read_results(d)
            elif kind == "run":
                r, task = run_result(d)
                results.append(r)
            else:
                r, task = ticket_result(d)
                results.append(r)
            known = tuple(x for x in task if x is not None)
            if known:
                tasks.setdefault(task, str(d))
    datasets = {t[0] for t in tasks if t[0] is not None}
    if len(datasets) > 1:
        where = "; ".join(f"{k[0]} in {v!r}" for k, v in tasks.items())
        raise InputError(f"these results come from different datasets and cannot be compared: {where}")
    return results


def _find(p: Path) -> list[tuple[str, Path]]:
    """``(kind, directory)`` for every comparison, run and ticket directory at or below ``p`` (a comparison's
    own work and target directories belong to it and are not listed again)."""
    if is_compare_dir(p):
        return [("compare", p)]
    if (p / "summary.json").is_file():
        return [("run", p)]
    if (p / "ticket.json").is_file():
        return [("ticket", p)]
    if not p.is_dir():
        return []
    out: list[tuple[str, Path]] = []
    for child in sorted(c for c in p.iterdir() if c.is_dir()):
        out += _find(child)
    return out
