"""The result type every check returns, the ``@check`` decorator and small proof helpers.

A *check* is a plain function ``fn(seed: int) -> Outcome`` whose docstring states the lemma and cites
the paper. ``@check(item=..., paper=...)`` attaches that metadata to the function (no registry, no
global state); :mod:`proofs_check.runner` times it and turns it into a :class:`CheckResult`.

Statuses, from strongest to weakest:

* ``proved``: every step was decided by sympy (``simplify(...) == 0`` or a relation that evaluated
  to ``True``); the logical glue between steps (case splits, "g(0) = 0 and g' >= 0 gives g >= 0",
  induction) is stated in the detail.
* ``verified-numerically``: checked on concrete instances (exact rationals, integers or interval
  arithmetic where floats could mislead); a finite check, not a proof.
* ``verified-statistically``: a scaling law (section C) fell inside its stated tolerance band.
* ``skipped``: the check needs code that is not there yet (the reason is in the detail).
* ``failed``: a counterexample, a band missed, or the check itself raised. A failed check is a
  finding to report, never a check to delete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

PROVED = "proved"
NUMERIC = "verified-numerically"
STATISTICAL = "verified-statistically"
SKIPPED = "skipped"
FAILED = "failed"
STATUSES: tuple[str, ...] = (PROVED, NUMERIC, STATISTICAL, SKIPPED, FAILED)


@dataclass(frozen=True)
class Outcome:
    """What a check function returns: its status, a one-line detail and optional figures."""

    status: str
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """One row of the report: check name, item, paper, status, wall seconds, detail, figures."""

    name: str
    paper: str
    status: str
    seconds: float
    detail: str
    item: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {"name": self.name, "item": self.item, "paper": self.paper, "status": self.status,
                "seconds": round(self.seconds, 4), "detail": self.detail, "data": dict(self.data)}


CheckFn = Callable[[int], Outcome]


def check(*, item: str, paper: str, slow: bool = False) -> Callable[[CheckFn], CheckFn]:
    """Mark ``fn`` as a check of item ``item`` (e.g. ``"A1"``, see :mod:`proofs_check`) from ``paper``.

    ``slow`` checks run only with ``--slow``.
    """

    def mark(fn: CheckFn) -> CheckFn:
        fn.check_item = item  # type: ignore[attr-defined]
        fn.check_paper = paper  # type: ignore[attr-defined]
        fn.check_slow = slow  # type: ignore[attr-defined]
        return fn

    return mark


def run_check(fn: CheckFn, seed: int) -> CheckResult:
    """Run one check, timing it; an exception becomes a ``failed`` row that names it."""
    start = time.perf_counter()
    try:
        out = fn(seed)
    except Exception as exc:  # a crashing check is reported, never hidden
        out = Outcome(FAILED, f"check raised {type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - start
    return CheckResult(name=fn.__name__, paper=fn.check_paper, status=out.status,  # type: ignore[attr-defined]
                       seconds=seconds, detail=out.detail, item=fn.check_item,  # type: ignore[attr-defined]
                       data=out.data)


class Proof:
    """Accumulates the steps of a symbolic argument; each step records whether sympy decided it.

    ``zero(expr, what)`` passes when ``simplify(expr) == 0``; ``true(rel, what)`` when the relation
    evaluates to sympy ``True``. A step sympy cannot decide is recorded as *undecided* (not false);
    :meth:`outcome` turns the record into ``proved`` only when every step was decided true.
    """

    def __init__(self) -> None:
        self.steps: list[tuple[str, bool]] = []

    def zero(self, expr: sp.Expr, what: str) -> bool:
        ok = bool(sp.simplify(expr) == 0)
        self.steps.append((what, ok))
        return ok

    def true(self, rel: Any, what: str) -> bool:
        ok = bool(sp.simplify(rel) is sp.true) if not isinstance(rel, bool) else rel
        self.steps.append((what, ok))
        return ok

    @property
    def ok(self) -> bool:
        return all(ok for _, ok in self.steps)

    def undecided(self) -> list[str]:
        return [what for what, ok in self.steps if not ok]

    def outcome(self, argument: str, fallback: Callable[[], Outcome] | None = None) -> Outcome:
        """``proved`` with ``argument`` as detail, or the numeric ``fallback`` (or ``failed``) naming the undecided steps."""
        if self.ok:
            return Outcome(PROVED, argument)
        missing = "; ".join(self.undecided())
        if fallback is None:
            return Outcome(FAILED, f"sympy did not decide: {missing}")
        out = fallback()
        return Outcome(out.status, f"sympy did not decide ({missing}); {out.detail}", out.data)
