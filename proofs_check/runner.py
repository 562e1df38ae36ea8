"""Collect the checks of every paper module, run them, and report a table or one JSON object.

``python -m proofs_check [--slow] [--json] [--seed N] [--only TEXT]``; exit code 1 when any check
failed, 0 otherwise (skipped checks do not fail the run).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from proofs_check.core import FAILED, STATUSES, CheckFn, CheckResult, run_check

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
    ``only`` (a case-insensitive substring of the check name, item or paper)."""
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
        from strongticket.errors import InputError

        hint = "" if slow else " (the statistical C items need --slow)"
        raise InputError(f"--only {only!r} matches no check's name, §9 item or paper{hint}; "
                         f"checks: {', '.join(names)}")
    return fns


def run_checks(slow: bool = False, seed: int = 0, only: str | None = None) -> list[CheckResult]:
    """Run the selected checks in order, each with ``seed``; returns one :class:`CheckResult` per check."""
    return [run_check(fn, seed) for fn in collect(slow=slow, only=only)]


def summary(results: Sequence[CheckResult], seconds: float, slow: bool, seed: int) -> dict[str, Any]:
    """The JSON report: mode, seed, counts per status, total seconds, ``ok`` and every result."""
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    return {"mode": "slow" if slow else "fast", "seed": seed, "ok": counts[FAILED] == 0, "counts": counts,
            "seconds": round(seconds, 3), "checks": [r.as_dict() for r in results]}


_STYLE = {"proved": "green", "verified-numerically": "cyan", "verified-statistically": "cyan",
          "skipped": "yellow", "failed": "bold red"}


def print_report(results: Sequence[CheckResult], seconds: float, as_json: bool, slow: bool, seed: int) -> None:
    """Print the rich table (check, item, paper, status, seconds, detail) and a one-line summary, or the JSON object."""
    from strongticket.cli.common import emit_json, stdout

    if as_json:
        emit_json(summary(results, seconds, slow, seed))
        return
    from rich.console import Console
    from rich.table import Table

    if not stdout.is_terminal:  # pipes and CI logs: wide enough that names and statuses stay on one line
        stdout = Console(soft_wrap=True, width=180)

    table = Table(title=f"proofs_check ({'slow' if slow else 'fast'} mode, seed {seed})", title_justify="left")
    for col, kw in (("check", {"no_wrap": True}), ("item", {}), ("paper", {}), ("status", {"no_wrap": True}), ("seconds", {"justify": "right"}),
                    ("detail", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for r in results:
        table.add_row(r.name, r.item, r.paper, f"[{_STYLE.get(r.status, '')}]{r.status}[/]", f"{r.seconds:.2f}",
                      r.detail)
    stdout.print(table)
    counts = summary(results, seconds, slow, seed)["counts"]
    stdout.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" in {seconds:.1f} s", highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry of ``python -m proofs_check``; returns the exit code (1 if any check failed)."""
    parser = argparse.ArgumentParser(prog="python -m proofs_check", description=__doc__.splitlines()[0])
    parser.add_argument("--slow", action="store_true", help="also run the statistical scaling checks (§9 C)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument("--only", default=None, help="run only checks whose name, item or paper contains TEXT")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        results = run_checks(slow=args.slow, seed=args.seed, only=args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_report(results, time.perf_counter() - start, args.json, args.slow, args.seed)
    return 1 if any(r.status == FAILED for r in results) else 0
