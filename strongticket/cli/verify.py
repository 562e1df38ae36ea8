"""``strongticket verify``: a ticket directory -> its errors against its target (or its task accuracy);
``strongticket verify scaling``: the width structured tickets need against the instance dimension.

Thin: parse, call :func:`strongticket.verify.report.verify_report` or
:func:`strongticket.verify.scaling.structured_scaling`, print a table with labels and units or one JSON object.
``verify`` is a group whose default command is the ticket check, so ``strongticket verify TICKET`` and
``strongticket verify scaling ...`` both read naturally (``strongticket verify ticket TICKET`` is the same as
the first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from strongticket.cli.common import JsonOption, SeedOption, emit_json, print_table, status_line, stdout
from strongticket.ticket import Ticket
from strongticket.validation import check_int
from strongticket.verify.report import certified_dominates, check_options, report_rows, verify_report


_DEFAULT = "ticket"


class _TicketByDefault(TyperGroup):
    """A group whose first argument, when it names no subcommand, is the ticket directory of ``verify ticket``
    (no argument at all is ``verify ticket`` missing its ticket: a one-line usage error, as before the group)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_TicketByDefault,
                  help="Check a ticket against its target (verify TICKET), or measure the width structured tickets "
                       "need (verify scaling).")


@app.command(_DEFAULT)
def verify(
    ticket_dir: Annotated[Path, typer.Argument(help="Ticket directory.")],
    radius: Annotated[float, typer.Option("--radius", help="Radius R of the input ball (l2, > 0).")] = 1.0,
    count: Annotated[int, typer.Option("--count", help="Random inputs for each sampled error (>= 1).")] = 2000,
    restarts: Annotated[int, typer.Option("--restarts", help="Adversarial restarts (>= 1).")] = 4,
    steps: Annotated[int, typer.Option("--steps", help="Gradient steps per restart (>= 1).")] = 50,
    data: Annotated[str | None, typer.Option("--data", help="Also measure on a dataset's test split "
                                                             "(digits, mnist, ...).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder with mnist/, fashion-mnist/, "
                                                                 "cifar-10-batches-bin/ for --data or a found "
                                                                 "ticket's dataset (default $STRONGTICKET_DATA).")
                                    ] = None,
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Error of a ticket against its recorded target: empirical, adversarial, certified (and accuracy on --data)."""
    check_options(radius=radius, count=count, restarts=restarts, steps=steps, seed=seed)
    ticket = Ticket.load(ticket_dir)
    with status_line(not json_out, "verifying") as log:
        report = verify_report(ticket, radius=radius, count=count, restarts=restarts, steps=steps, seed=seed,
                               dataset=data, data_dir=data_dir, log=log)
    if json_out:
        emit_json({"ticket": str(ticket_dir), **report})
        return
    title = f"ticket {ticket_dir}" + (f" on the {report['data']} test split" if report.get("data") else "")
    print_table(title, ["check", "value", "unit"], report_rows(report))
    ok = certified_dominates(report)
    if ok is not None:
        stdout.print("certified bound dominates every measured error" if ok else
                     "[bold red]certified bound below a measured error: report this[/]")


#: Defaults, and those of ``--quick`` (a seconds-long run for tests and smoke checks); options given win.
FULL = {"dims": "4,9,18,36", "eps": "0.5,0.25", "targets": 16, "max_width": 4096}
QUICK = {"dims": "1,4,9", "eps": "0.5", "targets": 4, "max_width": 512}


@app.command("scaling")
def scaling(
    dims: Annotated[str | None, typer.Option("--dims", help="Instance dimensions D, comma-separated (k^2 for "
                                                             "kernel, k^2 g for group, k^2 c_out for filter "
                                                             f"granularity) \\[default: {FULL['dims']}].")] = None,
    eps: Annotated[str | None, typer.Option("--eps", help="l_inf errors to reach, comma-separated, each in (0, 1) "
                                                           f"\\[default: {FULL['eps']}].")] = None,
    targets: Annotated[int | None, typer.Option("--targets", help="Synthetic targets U[-1, 1]^D per width tried "
                                                                   f"\\[default: {FULL['targets']}].")] = None,
    quantile: Annotated[float, typer.Option("--quantile", help="Fraction of the targets that must reach eps, in "
                                                               "(0, 1].")] = 0.9,
    max_width: Annotated[int | None, typer.Option("--max-width", help="Largest width H (channels per input) tried "
                                                                       f"\\[default: {FULL['max_width']}].")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="MRSS search steps per run (default: the "
                                                              "search's own).")] = None,
    restarts: Annotated[int | None, typer.Option("--restarts", help="MRSS search runs per target (default: "
                                                                    "the search's own).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the result as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw width vs D (log-log) with the counting "
                                                             "bound and the theorem's D^3 shape (PNG).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out or --plot file (never a "
                                                                "directory).")] = False,
    quick: Annotated[bool, typer.Option("--quick", help=f"A seconds-long run: D = {QUICK['dims']}, eps "
                                                        f"{QUICK['eps']}, {QUICK['targets']} targets, "
                                                        f"H <= {QUICK['max_width']} (options given still win).")
                     ] = False,
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Structured tickets: intermediate channels per input needed to reach eps, against the instance dimension.

    Synthetic instances as the structured construction builds them (targets U[-1, 1]^D, candidates |u| V with
    u, V ~ N(0, 1), inputs >= 0), solved by its MRSS search; the smallest width at which --quantile of the
    targets reach eps (doubling, then bisection), the counting lower bound 2 D log2(1/eps), the MRSS theorem's
    D^3 shape and the fitted exponent of width against D.
    """
    from strongticket.cli.rss import parse_list
    from strongticket.files import check_writable_file
    from strongticket.verify.scaling import plot_structured_scaling, structured_scaling

    base = QUICK if quick else FULL
    dims = base["dims"] if dims is None else dims
    eps = base["eps"] if eps is None else eps
    targets = base["targets"] if targets is None else targets
    max_width = base["max_width"] if max_width is None else max_width
    dim_list = parse_list("--dims", dims, int)
    eps_list = parse_list("--eps", eps, float)
    options = {k: v for k, v in (("steps", steps), ("restarts", restarts)) if v is not None}
    for name, v in options.items():
        check_int(f"--{name}", v, lo=0 if name == "steps" else 1)
    for path, what in ((out, "--out"), (plot, "--plot")):  # before any work: fail fast, the user's files stay
        if path is not None:
            check_writable_file(path, overwrite=overwrite, what=what)
    with status_line(not json_out, "measuring structured widths") as log:
        result = structured_scaling(dim_list, eps_list, targets=targets, quantile=quantile, width_max=max_width,
                                    seed=seed, search_options=options, log=log)
    if out is not None:
        from strongticket.files import write_json_atomic

        write_json_atomic(out, result, what="--out")
    if plot is not None:
        plot_structured_scaling(result, plot)
    if json_out:
        emit_json(result)
        return
    print_table(f"structured width vs dimension: {targets} targets U[-1, 1]^D, {quantile:g} of them within eps "
                "(l_inf)", ["eps", "D", "width H", "counting bound", "H / bound", "median error", "CPU s"],
                [[r["eps"], r["dimension"], r["width"] if r["width"] else f"> {r['width_max']}",
                  r["counting_width"], r["width"] / r["counting_width"] if r["width"] else "n/a",
                  r["median_error_at_width"] if r["width"] else "n/a", r["cpu_seconds"]] for r in result["rows"]])
    for fit in result["fits"]:
        exp = "n/a (fewer than two dimensions reached)" if fit["exponent"] is None else f"{fit['exponent']:.2f}"
        stdout.print(f"eps {fit['eps']:g}: fitted exponent of width vs D {exp} over D = {fit['dims']} "
                     f"(MRSS theorem: {result['theorem_exponent']}, counting bound: {result['counting_exponent']})",
                     highlight=False)
    if plot is not None:
        stdout.print(f"plot: {plot}", highlight=False)
