"""``strongticket proofs``: run the lemma checks of ``proofs_check`` (same as ``python -m proofs_check``)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from strongticket.cli.common import JsonOption, SeedOption


def proofs(
    slow: Annotated[bool, typer.Option("--slow", help="Also run the statistical scaling checks (§9 C; minutes).")] = False,
    only: Annotated[str | None, typer.Option("--only", help="Run only checks whose name, §9 item or paper "
                                                            "contains this text.")] = None,
    seed: SeedOption = 0,
    json: JsonOption = False,
) -> None:
    """Check the lemmas behind the constructions: sympy proofs, exact numeric checks and (--slow) scaling laws.

    Prints a table (check, §9 item, paper, status, seconds, detail); exits with code 1 if any check failed.
    """
    from proofs_check.core import FAILED
    from proofs_check.runner import print_report, run_checks

    start = time.perf_counter()
    results = run_checks(slow=slow, seed=seed, only=only)
    print_report(results, time.perf_counter() - start, json, slow, seed)
    if any(r.status == FAILED for r in results):
        raise typer.Exit(code=1)
