"""Collect the checks of every paper module and run them; the results are data, printed by the callers.

:func:`run_checks` returns one :class:`~proofs_check.core.CheckResult` per check; :func:`summary` turns them
into the JSON report and :func:`report_table` into a ``rich`` table. ``python -m proofs_check``
(:mod:`proofs_check.__main__`) and ``strongticket proofs`` print those; nothing here writes to the terminal.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from proofs_check.core import FAILED, SKIPPED, STATUSES, CheckFn, CheckResult, run_check
from strongticket.errors import InputError

#: Paper modules in report order; each defines ``CHECKS``, a tuple of ``@check`` functions.
MODULES: tuple[str, ...] = (
    "proofs_check.pensia",
    "proofs_check.burkholz",
    "proofs_check.lueker",
    "proofs_check.dacunha_cnn",
    "proofs_check.counting",
    "proofs_check.mrss",
    "proofs_check.statistical",
)


def collect(slow: bool = False, only: str | None = None) -> list[CheckFn]:
    """Every check of :data:`MODULES` (fast ones, plus the slow ones when ``slow``), filtered by
    ``only`` (a case-insensitive substring of the check name, item or paper).

    Raises
    ------
    InputError
        When ``only`` matches no check (the message lists the checks).
    """
    fns: list[CheckFn] = []
    names: list[str] = []
    for mod in MODULES:
        for fn in importlib.import_module(mod).CHECKS:
            if fn.check_slow and not slow:  # type: ignore[attr-defined]
                continue
            names.append(fn.__name__)
            key = f"{fn.__name__} {fn.check_item} {fn.check_paper}".lower()  # type: ignore[attr-defined]
            if only is None or only.lower() in key:
                fns.append(fn)
    if not fns:
        hint = "" if slow else " (the statistical C items need --slow)"
        raise InputError(f"--only {only!r} matches no check's name, item or paper{hint}; "
                         f"checks: {', '.join(names)}")
    return fns


def run_checks(slow: bool = False, seed: int = 0, only: str | None = None) -> list[CheckResult]:
    """Run the selected checks in order, each with ``seed``; returns one :class:`CheckResult` per check."""
    return [run_check(fn, seed) for fn in collect(slow=slow, only=only)]


def failed(results: Sequence[CheckResult]) -> bool:
    """True when any check failed (skipped checks do not fail a run)."""
    return any(r.status == FAILED for r in results)


def summary(results: Sequence[CheckResult], seconds: float, slow: bool, seed: int) -> dict[str, Any]:
    """The JSON report: mode, seed, counts per status, total seconds, ``ok`` and every result."""
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    return {"mode": "slow" if slow else "fast", "seed": seed, "ok": counts[FAILED] == 0, "counts": counts,
            "seconds": round(seconds, 3), "checks": [r.as_dict() for r in results]}


_STYLE = {"proved": "green", "verified-numerically": "cyan", "verified-statistically": "cyan",
          SKIPPED: "yellow", FAILED: "bold red"}


def report_table(results: Sequence[CheckResult], slow: bool, seed: int) -> Table:
    """The table (check, item, paper, status, seconds, detail) that the command-line entries print."""
    table = Table(title=f"proofs_check ({'slow' if slow else 'fast'} mode, seed {seed})", title_justify="left")
    for col, kw in (("check", {"no_wrap": True}), ("item", {}), ("paper", {}), ("status", {"no_wrap": True}),
                    ("seconds", {"justify": "right"}), ("detail", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for r in results:
        table.add_row(r.name, r.item, r.paper, f"[{_STYLE.get(r.status, '')}]{r.status}[/]", f"{r.seconds:.2f}",
                      r.detail)
    return table


def counts_line(results: Sequence[CheckResult], seconds: float) -> str:
    """``"12 proved, 3 verified-numerically, 1 skipped in 4.2 s"``."""
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" in {seconds:.1f} s"
