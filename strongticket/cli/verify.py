"""``strongticket verify``: a ticket directory -> its errors against its target (or its task accuracy).

Thin: parse, call :func:`strongticket.verify.report.verify_report`, print a table with labels and units or
one JSON object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongticket.cli.common import JsonOption, SeedOption, emit_json, print_table, stdout
from strongticket.ticket import Ticket
from strongticket.verify.report import certified_dominates, check_options, report_rows, verify_report


def verify(
    ticket_dir: Annotated[Path, typer.Argument(help="Ticket directory.")],
    radius: Annotated[float, typer.Option("--radius", help="Radius R of the input ball (l2, > 0).")] = 1.0,
    count: Annotated[int, typer.Option("--count", help="Random inputs for each sampled error (>= 1).")] = 2000,
    restarts: Annotated[int, typer.Option("--restarts", help="Adversarial restarts (>= 1).")] = 4,
    steps: Annotated[int, typer.Option("--steps", help="Gradient steps per restart (>= 1).")] = 50,
    data: Annotated[str | None, typer.Option("--data", help="Also measure on a dataset's test split "
                                                             "(digits, mnist, ...).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where mnist/fashion-mnist live.")] = None,
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Error of a ticket against its recorded target: empirical, adversarial, certified (and accuracy on --data)."""
    check_options(radius=radius, count=count, restarts=restarts, steps=steps, seed=seed)
    ticket = Ticket.load(ticket_dir)
    report = verify_report(ticket, radius=radius, count=count, restarts=restarts, steps=steps, seed=seed,
                           dataset=data, data_dir=data_dir)
    if json_out:
        emit_json({"ticket": str(ticket_dir), **report})
        return
    title = f"ticket {ticket_dir}" + (f" on the {report['data']} test split" if report.get("data") else "")
    print_table(title, ["check", "value", "unit"], report_rows(report))
    ok = certified_dominates(report)
    if ok is not None:
        stdout.print("certified bound dominates every measured error" if ok else
                     "[bold red]certified bound below a measured error: report this[/]")
