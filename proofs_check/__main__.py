"""``python -m proofs_check [--slow] [--json] [--seed N] [--only TEXT]``: run the checks and print the report.

Exit code 1 when any check failed, 2 for a bad argument, 0 otherwise (skipped checks do not fail the run).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from rich.console import Console

from proofs_check.runner import counts_line, failed, report_table, run_checks, summary
from strongticket.errors import InputError
from strongticket.jsonio import emit_json


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the checks, print the table (or one JSON object); return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m proofs_check",
                                     description="Check the lemmas behind strongticket's constructions.")
    parser.add_argument("--slow", action="store_true", help="also run the statistical scaling checks (items C)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument("--only", default=None, help="run only checks whose name, item or paper contains TEXT")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        results = run_checks(slow=args.slow, seed=args.seed, only=args.only)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    if args.json:
        emit_json(summary(results, seconds, args.slow, args.seed))
    else:
        # pipes and CI logs: wide enough that names and statuses stay on one line
        console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 180)
        console.print(report_table(results, args.slow, args.seed))
        console.print(counts_line(results, seconds), highlight=False)
    return 1 if failed(results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
