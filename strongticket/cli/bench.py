"""``strongticket bench compact TICKET``: latency and memory of a compacted ticket (see
:mod:`strongticket.compact_bench`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongticket.cli.common import JsonOption, SeedOption, emit_json, print_table
from strongticket.cli.rss import parse_list

app = typer.Typer(help="Benchmarks of built tickets (the solvers' benchmark is `strongticket rss bench`).",
                  no_args_is_help=True)


@app.command("compact")
def compact(
    ticket_dir: Annotated[Path, typer.Argument(help="A ticket directory of univariate 2L pairs (structured or "
                                                    "cnn2l).")],
    batches: Annotated[str, typer.Option("--batches", help="Comma-separated batch sizes.")] = "1,256",
    repeats: Annotated[int, typer.Option("--repeats", help="Timed forward passes per module and batch (the "
                                                           "median is reported).")] = 20,
    device: Annotated[str, typer.Option("--device", help="cpu, or cuda[:N] where CUDA is present.")] = "cpu",
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Median latency of the compacted ticket against the masked random network and the target."""
    from strongticket.compact_bench import benchmark_compact
    from strongticket.ticket import Ticket

    sizes = tuple(parse_list("--batches", batches, int))
    ticket = Ticket.load(ticket_dir)
    rows = benchmark_compact(ticket, batches=sizes, repeats=repeats, device=device, seed=seed)
    if json_out:
        emit_json({"ticket": str(ticket_dir), "rows": rows})
        return
    print_table(f"ticket {ticket_dir} on {rows[0]['device']}: median of {repeats} forward passes",
                ["module", "batch", "median ms", "speed-up vs masked", "params", "module MB", "peak device MB"],
                [[r["module"], r["batch"], r["median_ms"], r["speedup_vs_masked"], r["params"],
                  r["module_bytes"] / 2**20,
                  "n/a (CPU)" if r["peak_device_bytes"] is None else r["peak_device_bytes"] / 2**20] for r in rows])
