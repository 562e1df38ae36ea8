"""``strongticket proofs``: run the lemma checks of ``proofs_check`` (same as ``python -m proofs_check``)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from strongticket.cli.common import JsonOption, SeedOption, emit_json, stdout


def proofs(
    slow: Annotated[bool, typer.Option("--slow", help="Also run the statistical scaling checks (items C; "
                                                      "minutes).")] = False,
    only: Annotated[str | None, typer.Option("--only", help="Run only checks whose name, item or paper "
                                                            "contains this text.")] = None,
    seed: SeedOption = 0,
    json: JsonOption = False,
) -> None:
    """Check the lemmas behind the constructions: sympy proofs, exact numeric checks and (--slow) scaling laws.

    Prints a table (check, item, paper, status, seconds, detail); exits with code 1 if any check failed.
    """
    from proofs_check.runner import counts_line, failed, report_table, run_checks, summary

    start = time.perf_counter()
    results = run_checks(slow=slow, seed=seed, only=only)
    seconds = time.perf_counter() - start
    if json:
        emit_json(summary(results, seconds, slow, seed))
    else:
        stdout.print(report_table(results, slow, seed))
        stdout.print(counts_line(results, seconds), highlight=False)
    if failed(results):
        raise typer.Exit(code=1)
