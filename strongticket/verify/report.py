"""Every check of a ticket, as one JSON-able report: measured and certified errors, task accuracy.

:func:`verify_report` is what ``strongticket verify`` prints. A constructed ticket (one that records its
target) is checked against the target: sampled and adversarial output errors in the input ball, the
certified bound of :mod:`strongticket.verify.certified` that must dominate them, and, with a dataset,
accuracy and errors on its test split. A ticket found by search records no target and is checked on its
task (:func:`task_report`). :data:`FIELDS` gives each key of a report a readable label and its unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from strongticket.errors import InputError
from strongticket.nets.distributions import check_seed
from strongticket.ticket import Ticket


@dataclass(frozen=True)
class Field:
    """How one key of a report reads: a label and the unit of its value."""

    label: str
    unit: str


#: Every key a report may hold, in the order a table shows them. Output errors are l2 norms of the
#: difference of the two networks' outputs (logits for classifiers), in the outputs' own units.
FIELDS: dict[str, Field] = {
    "eps": Field("requested network error eps (sup over |x|_2 <= 1)", "output l2"),
    "per_weight_eps": Field("requested per-weight error eps'", "weight"),
    "max_per_weight_error": Field("max per-weight error |subset sum - w|", "weight"),
    "radius": Field("input ball radius R", "input l2"),
    "empirical_sphere": Field("output error |f(x) - g(x)|_2, max over samples with |x|_2 = R", "output l2"),
    "empirical_ball": Field("output error |f(x) - g(x)|_2, max over samples with |x|_2 <= R", "output l2"),
    "adversarial": Field("output error |f(x) - g(x)|_2, max by gradient ascent in |x|_2 <= R", "output l2"),
    "certified": Field("output error |f(x) - g(x)|_2, certified bound over |x|_2 <= R", "output l2"),
    "target_accuracy": Field("target test accuracy", "fraction"),
    "ticket_accuracy": Field("ticket test accuracy", "fraction"),
    "recorded_accuracy": Field("test accuracy recorded by the run", "fraction"),
    "empirical_data": Field("output error |f(x) - g(x)|_2, max over the test inputs", "output l2"),
    "data_radius": Field("largest test input norm |x|_2", "input l2"),
    "certified_data": Field("output error |f(x) - g(x)|_2, certified bound over x >= 0, |x|_2 <= that norm",
                            "output l2"),
    "params": Field("random network parameters", "count"),
    "kept": Field("parameters kept by the masks", "count"),
    "density": Field("density (kept / parameters)", "fraction"),
}

#: The measured errors the certified bound must dominate (present on tickets that accept any sign of input).
MEASURED = ("empirical_sphere", "empirical_ball", "adversarial")


def _positive_int(flag: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{flag} must be a positive integer, got {value!r}")
    return value


def check_options(*, radius: float, count: int, restarts: int, steps: int, seed: int) -> None:
    """Raise an :class:`InputError` naming the first option out of range (before any work is done)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (math.isfinite(radius) and radius > 0):
        raise InputError(f"--radius must be a finite number > 0, got {radius!r}")
    _positive_int("--count", count)
    _positive_int("--restarts", restarts)
    _positive_int("--steps", steps)
    check_seed(seed)


def _test_inputs(ticket: Ticket, dataset: str, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split of ``dataset`` shaped as the ticket's inputs, or an :class:`InputError` if it does not fit."""
    from strongticket.train.data import load_dataset
    from strongticket.verify.measure import input_shape

    ds = load_dataset(dataset, data_dir=data_dir)
    x = ds.test_x
    shape = input_shape(ticket)
    if math.prod(shape) != math.prod(x.shape[1:]):
        raise InputError(f"--data {dataset}: the ticket takes inputs of shape {tuple(shape)} "
                         f"({math.prod(shape)} values), the dataset's test inputs have shape "
                         f"{tuple(x.shape[1:])} ({math.prod(x.shape[1:])} values)")
    return x.reshape((len(x), *shape)), ds.test_y


def verify_report(ticket: Ticket, *, radius: float = 1.0, count: int = 2000, restarts: int = 4, steps: int = 50,
                  seed: int = 0, dataset: str | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """Every check of a ticket against its recorded target, as one JSON-able dict (keys in :data:`FIELDS`).

    Parameters
    ----------
    ticket : Ticket
        A constructed ticket (its provenance records the target), or one found by search (then
        :func:`task_report` on ``dataset``, by default the one its provenance names).
    radius : float > 0
        Radius ``R`` of the input ball (l2 over all input entries).
    count : int >= 1
        Random inputs for each sampled error (sphere and ball).
    restarts, steps : int >= 1
        Rounds of projected gradient ascent and steps per round
        (:func:`~strongticket.verify.measure.adversarial_error`).
    seed : int >= 0
        Seed of the sampled inputs and of the ascent's starting points.
    dataset : str, optional
        Also measure accuracy and errors on this dataset's test split.
    data_dir : Path, optional
        Where file-based datasets live.
    """
    from strongticket.verify.accuracy import accuracy
    from strongticket.verify.certified import certified_bound
    from strongticket.verify.measure import adversarial_error, empirical_error, error_on, target_module

    check_options(radius=radius, count=count, restarts=restarts, steps=steps, seed=seed)
    if "target" not in ticket.provenance:
        return task_report(ticket, dataset or ticket.provenance.get("dataset"), data_dir)
    test = _test_inputs(ticket, dataset, data_dir) if dataset else None  # a misfit fails before the long work
    weights = ticket.random_weights()
    g = ticket.to_module(torch.float64, weights=weights)
    f = target_module(ticket)
    nonneg = bool(ticket.provenance.get("nonneg_input", False))
    report: dict[str, Any] = {"radius": radius, "nonneg_input": nonneg}
    if ticket.provenance.get("eps") is not None:
        report["eps"] = ticket.provenance["eps"]
    report.update({"per_weight_eps": ticket.provenance.get("per_weight_eps"),
                   "max_per_weight_error": ticket.provenance.get("max_error"),
                   "params": ticket.num_params, "kept": ticket.num_kept, "density": ticket.density})
    if not nonneg:
        report["empirical_sphere"] = empirical_error(ticket, f, domain="sphere", count=count, radius=radius,
                                                     seed=seed, module=g).sup
        report["empirical_ball"] = empirical_error(ticket, f, domain="ball", count=count, radius=radius,
                                                   seed=seed + 1, module=g).sup
        report["adversarial"] = adversarial_error(ticket, f, radius=radius, restarts=restarts, steps=steps,
                                                  seed=seed, module=g).sup
        report["certified"] = certified_bound(ticket, f, radius=radius, weights=weights).bound
    if test is not None:
        x, y = test
        report["data"] = dataset
        report["target_accuracy"] = accuracy(f, x, y)
        report["ticket_accuracy"] = accuracy(g, x, y)
        report["empirical_data"] = error_on(f, g, x.double()).sup
        data_radius = float(x.reshape(len(x), -1).norm(dim=1).max())
        report["certified_data"] = certified_bound(ticket, f, radius=data_radius, nonneg_input=True,
                                                   weights=weights).bound
        report["data_radius"] = data_radius
    return report


def task_report(ticket: Ticket, dataset: str | None, data_dir: Path | None = None) -> dict[str, Any]:
    """Task accuracy of a ticket that approximates no target (a searched ticket), beside the recorded one."""
    from strongticket.verify.accuracy import accuracy

    if not dataset:
        raise InputError("the ticket records neither a target nor a dataset: pass --data NAME to measure its accuracy")
    x, y = _test_inputs(ticket, dataset, data_dir)
    g = ticket.to_module(torch.float32)
    return {"kind": ticket.provenance.get("kind", "searched"), "data": dataset,
            "params": ticket.num_params, "kept": ticket.num_kept, "density": ticket.density,
            "ticket_accuracy": accuracy(g, x, y),
            "recorded_accuracy": ticket.provenance.get("test_accuracy")}


def certified_dominates(report: dict[str, Any]) -> bool | None:
    """Whether the certified bound is >= every measured error of ``report`` (None when it has no bound)."""
    if "certified" not in report:
        return None
    return report["certified"] >= max(report[k] for k in MEASURED)


def report_rows(report: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """``(label, value, unit)`` for every numeric key of ``report`` in :data:`FIELDS`, in that order."""
    return [(field.label, report[key], field.unit) for key, field in FIELDS.items()
            if isinstance(report.get(key), (int, float)) and not isinstance(report.get(key), bool)]


__all__ = ["FIELDS", "MEASURED", "Field", "certified_dominates", "check_options", "report_rows", "task_report",
           "verify_report"]
