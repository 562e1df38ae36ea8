"""``strongticket compact TICKET --out DIR``: a structured ticket → a smaller dense CNN (see
:mod:`strongticket.compact` and docs/formats.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongticket.cli.common import JsonOption, emit_json, stdout


def compact(
    ticket_dir: Annotated[Path, typer.Argument(help="A ticket directory of univariate 2L pairs "
                                                    "(strongticket construct --method structured or cnn2l).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write (compact.json + weights.safetensors).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it is a compacted-ticket "
                                                                "directory (never anything else).")] = False,
    json_out: JsonOption = False,
) -> None:
    """Write the ticket as a physically smaller dense CNN: pruned intermediate channels removed, the 1x1
    layer as a grouped convolution; same function up to float rounding."""
    from strongticket.compact import check_compact_destination, num_parameters, save_compact
    from strongticket.ticket import Ticket

    check_compact_destination(out, overwrite=overwrite, what="--out")  # before any work: fail fast
    ticket = Ticket.load(ticket_dir)
    module = ticket.compact()
    params = num_parameters(module)
    provenance = {"ticket": str(ticket_dir), "ticket_method": ticket.provenance.get("method"),
                  "ticket_params": ticket.num_params, "ticket_kept": ticket.num_kept,
                  "structure": ticket.provenance.get("structure")}
    save_compact(module, out, input_shape=ticket.spec.input_shape, provenance=provenance, overwrite=overwrite)
    if json_out:
        emit_json({"out": str(out), "ticket_dir": str(ticket_dir), "parameters": params,
                   "ticket_params": ticket.num_params, "ticket_kept": ticket.num_kept, "layers": module.description})
        return
    stdout.print(f"ticket {ticket_dir} -> compacted CNN {out}: {params} parameters (random network "
                 f"{ticket.num_params}, kept weights {ticket.num_kept})", highlight=False)
