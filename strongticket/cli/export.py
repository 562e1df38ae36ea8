"""``strongticket export RUN_DIR --out TICKET_DIR``: an edge-popup or GEM-MINER run → a ticket directory (see
:mod:`strongticket.train.export`, docs/training.md and docs/formats.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongticket.cli.common import JsonOption, emit_json, print_table, stdout
from strongticket.errors import InputError


def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished edge-popup or gem-miner run directory (strongticket "
                                                 "train).")],
    out: Annotated[Path, typer.Option("--out", help="Ticket directory to write.")],
    seed: Annotated[int | None, typer.Option(
        "--seed", help="A check only, nothing is drawn: fail unless the run's seed (in its config.json) is this "
                       "one. The ticket's seed is always the run's.")] = None,
    include_weights: Annotated[bool, typer.Option("--include-weights", help="Also write weights.safetensors "
                                                                            "(the random weights).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it is a ticket directory (never anything else).")] = False,
    variant: Annotated[str, typer.Option(
        "--variant", help="strong: the mask on the random weights (gem-miner: the search's mask, before any "
                          "fine-tuning). finetuned is refused: a fine-tuned network's weights were trained, so it "
                          "is not a strong ticket.")] = "strong",
    json_out: JsonOption = False,
) -> None:
    """Export an edge-popup or gem-miner run as a strong ticket (random NetSpec + distribution + seed + masks).

    The ticket's random network is the run's, seed included: --seed only checks it. A gem-miner run exports the
    mask its search found on the random weights, also when the run fine-tuned it afterwards.
    """
    from strongticket.ticket import check_ticket_destination
    from strongticket.train.export import run_to_ticket

    check_ticket_destination(out, overwrite=overwrite, what="--out")  # before any work: fail fast
    ticket = run_to_ticket(run_dir, variant)
    if seed is not None and seed != ticket.seed:
        raise InputError(f"--seed {seed} does not match the run's seed {ticket.seed} (in {str(run_dir)!r})")
    ticket.save(out, include_weights=include_weights, overwrite=overwrite, what="--out")
    rows = ticket.density_table()
    if json_out:
        emit_json({"ticket_dir": str(out), "run_dir": str(run_dir), "seed": ticket.seed,
                   "distribution": ticket.distribution.to_dict(), "params": ticket.num_params,
                   "kept": ticket.num_kept, "density": ticket.density, "layers": rows[:-1],
                   "test_accuracy": ticket.provenance.get("test_accuracy")})
        return
    print_table(f"ticket {out}", ["name", "shape", "kept", "density"],
                [(r["name"], "x".join(map(str, r["shape"])), r["kept"], r["density"]) for r in rows])
    stdout.print(f"{ticket.provenance['method']} run {run_dir} -> ticket {out}: {ticket.distribution.name} weights from seed "
                 f"{ticket.seed}, density {ticket.density:.4g} over all {ticket.num_params} parameters",
                 highlight=False)
