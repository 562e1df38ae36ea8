"""Every check of a ticket, as one JSON-able report: measured and certified errors, task accuracy.

:func:`verify_report` is what ``strongticket verify`` prints. A constructed ticket (one that records its
target) is checked against the target: sampled and adversarial output errors in the input ball, the
certified bound of :mod:`strongticket.verify.certified` that must dominate them, and, with a dataset,
accuracy and errors on its test split. A ticket found by search records no target and is checked on its
task (:func:`task_report`). :data:`FIELDS` gives each key of a report a readable label and its unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from strongticket.construct import cnn2l, lplus1
from strongticket.errors import InputError
from strongticket.ticket import Ticket
from strongticket.validation import check_generator_seed, check_int, check_positive


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
    "radius": Field("input radius R (l2 ball; l_inf box for CNN and L+1 tickets)", "input"),
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
    "empirical_box": Field("output error |f(x) - g(x)|_inf, max over samples with |x|_inf <= R", "output l_inf"),
    "adversarial_box": Field("output error |f(x) - g(x)|_inf, max by signed-gradient ascent in |x|_inf <= R",
                             "output l_inf"),
    "certified_linf": Field("output error |f(x) - g(x)|_inf, certified bound over |x|_inf <= R", "output l_inf"),
    "empirical_data_linf": Field("output error |f(x) - g(x)|_inf, max over the test inputs", "output l_inf"),
    "data_radius_linf": Field("largest test input entry |x|_inf", "input l_inf"),
    "certified_data_linf": Field("output error |f(x) - g(x)|_inf, certified bound over |x|_inf <= that entry",
                                 "output l_inf"),
    "params": Field("random network parameters", "count"),
    "kept": Field("parameters kept by the masks", "count"),
    "density": Field("density (kept / parameters)", "fraction"),
}

#: The measured errors each certified bound must dominate (l2 bounds: tickets that accept any sign of input;
#: l_inf bounds: CNN tickets).
MEASURED = ("empirical_sphere", "empirical_ball", "adversarial")
DOMINATED = {"certified": MEASURED, "certified_linf": ("empirical_box", "adversarial_box"),
             "certified_data_linf": ("empirical_data_linf",)}


def check_options(*, radius: float, count: int, restarts: int, steps: int, seed: int) -> None:
    """Raise an :class:`InputError` naming the first option out of range (before any work is done)."""
    check_positive("--radius", radius)
    check_int("--count", count, hi=(1 << 63) - 1)  # a tensor size is a signed 64-bit integer
    check_int("--restarts", restarts)
    check_int("--steps", steps)
    check_generator_seed("--seed", seed)


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


def _silent(message: str) -> None:
    """The progress callback when none is given."""


def verify_report(ticket: Ticket, *, radius: float = 1.0, count: int = 2000, restarts: int = 4, steps: int = 50,
                  seed: int = 0, dataset: str | None = None, data_dir: Path | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
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
    log : callable, optional
        Called with a short message as each stage starts (random weights, sampled errors, adversarial search,
        certified bound, test split): the progress of a long check.
    """
    from strongticket.verify.certified import certified_bound
    from strongticket.verify.measure import adversarial_error, compare_on, empirical_error, target_module

    check_options(radius=radius, count=count, restarts=restarts, steps=steps, seed=seed)
    if "target" not in ticket.provenance:
        return task_report(ticket, dataset or ticket.provenance.get("dataset"), data_dir)
    if dataset is None and data_dir is not None:
        raise InputError(f"--data-dir is read only with --data (the dataset whose test split is measured), got "
                         f"--data-dir {str(data_dir)!r} without --data")
    certify = LINF_CERTIFIERS.get(ticket.provenance.get("method"))
    if certify is not None:
        return _linf_report(ticket, certify, radius=radius, count=count, restarts=restarts, steps=steps, seed=seed,
                            dataset=dataset, data_dir=data_dir, log=log)
    say = log or _silent
    test = _test_inputs(ticket, dataset, data_dir) if dataset else None  # a misfit fails before the long work
    say(f"regenerating {ticket.num_params:,} random weights")
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
        say(f"sampled errors ({count} inputs on the sphere and in the ball)")
        report["empirical_sphere"] = empirical_error(ticket, f, domain="sphere", count=count, radius=radius,
                                                     seed=seed, module=g).sup
        report["empirical_ball"] = empirical_error(ticket, f, domain="ball", count=count, radius=radius,
                                                   seed=seed + 1, module=g).sup
        say(f"adversarial search ({restarts} restarts x {steps} steps)")
        report["adversarial"] = adversarial_error(ticket, f, radius=radius, restarts=restarts, steps=steps,
                                                  seed=seed, module=g).sup
        say("certified bound")
        report["certified"] = certified_bound(ticket, f, radius=radius, weights=weights).bound
    if test is not None:
        x, y = test
        say(f"target and ticket on {len(x):,} {dataset} test images")
        on = compare_on(f, g, x, y)
        report["data"] = dataset
        report["target_accuracy"] = on.target_accuracy
        report["ticket_accuracy"] = on.ticket_accuracy
        report["empirical_data"] = on.error.sup
        data_radius = float(x.reshape(len(x), -1).norm(dim=1).max())
        report["certified_data"] = certified_bound(ticket, f, radius=data_radius, nonneg_input=True,
                                                   weights=weights).bound
        report["data_radius"] = data_radius
    return report


def _lplus1_bound(ticket: Ticket, radius: float, target: torch.nn.Module) -> float:
    return lplus1.certified_bound(ticket, target, radius=radius).bound


def _cnn2l_bound(ticket: Ticket, radius: float, target: torch.nn.Module) -> float:
    return cnn2l.certified_linf(ticket, radius, target).bound


#: Constructions whose certified bound is stated in l_inf (inputs in a box, outputs entrywise), by the method
#: name their tickets record: ``certify(ticket, R, target) -> bound``.
LINF_CERTIFIERS: dict[str, Any] = {cnn2l.METHOD: _cnn2l_bound, lplus1.METHOD: _lplus1_bound}


def _linf_report(ticket: Ticket, certify: Any, *, radius: float, count: int, restarts: int, steps: int, seed: int,
                 dataset: str | None, data_dir: Path | None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The checks of a ticket whose bound is stated in l_inf (CNN tickets of da Cunha et al. 2022, depth-L+1
    tickets of Burkholz 2022).

    Sampled inputs fill the box ``|x|_inf <= R`` (its non-negative half when the ticket was built for
    non-negative inputs, such as images); the certified bound is the construction's own at the same ``R``.
    """
    from strongticket.verify.measure import adversarial_error, compare_on, empirical_error, target_module

    say = log or _silent
    test = _test_inputs(ticket, dataset, data_dir) if dataset else None
    say(f"regenerating {ticket.num_params:,} random weights")
    weights = ticket.random_weights()
    g = ticket.to_module(torch.float64, weights=weights)
    f = target_module(ticket)
    nonneg = bool(ticket.provenance.get("nonneg_input", False))
    report: dict[str, Any] = {"radius": radius, "nonneg_input": nonneg,
                              "per_weight_eps": ticket.provenance.get("per_weight_eps", ticket.provenance.get("eps")),
                              "max_per_weight_error": ticket.provenance.get("max_error"),
                              "params": ticket.num_params, "kept": ticket.num_kept, "density": ticket.density}
    domain = "box_nonneg" if nonneg else "box"
    say(f"sampled errors ({count} inputs in the box)")
    report["empirical_box"] = empirical_error(ticket, f, domain=domain, count=count, radius=radius, seed=seed,
                                              module=g, norm="linf").sup
    say(f"adversarial search ({restarts} restarts x {steps} steps)")
    report["adversarial_box"] = adversarial_error(ticket, f, radius=radius, restarts=restarts, steps=steps,
                                                  seed=seed, module=g, domain=domain, norm="linf").sup
    say("certified bound")
    report["certified_linf"] = certify(ticket, radius, f)
    if test is not None:
        x, y = test
        say(f"target and ticket on {len(x):,} {dataset} test images")
        on = compare_on(f, g, x, y, norm="linf")
        report["data"] = dataset
        report["target_accuracy"] = on.target_accuracy
        report["ticket_accuracy"] = on.ticket_accuracy
        report["empirical_data_linf"] = on.error.sup
        report["data_radius_linf"] = float(x.abs().max())
        # images in [0, 1] at the default radius 1: the same bound, certified once
        report["certified_data_linf"] = (report["certified_linf"] if report["data_radius_linf"] == radius
                                         else certify(ticket, report["data_radius_linf"], f))
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
    """Whether every certified bound of ``report`` is >= the errors measured in its norm (None: no bound)."""
    checks = [report[bound] >= max(report[k] for k in measured)
              for bound, measured in DOMINATED.items() if bound in report]
    return all(checks) if checks else None


def report_rows(report: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """``(label, value, unit)`` for every numeric key of ``report`` in :data:`FIELDS`, in that order."""
    return [(field.label, report[key], field.unit) for key, field in FIELDS.items()
            if isinstance(report.get(key), (int, float)) and not isinstance(report.get(key), bool)]


__all__ = ["DOMINATED", "FIELDS", "LINF_CERTIFIERS", "MEASURED", "Field", "certified_dominates", "check_options",
           "report_rows", "task_report", "verify_report"]
