"""Root of the ``strongticket`` command line: registers the command groups and turns errors into one line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from strongticket import __version__
from strongticket.cli import construct as construct_cli
from strongticket.cli import export as export_cli
from strongticket.cli import proofs, rss
from strongticket.cli import train as train_cli
from strongticket.cli.common import stderr
from strongticket.errors import StrongTicketError

app = typer.Typer(
    name="strongticket",
    help="Strong lottery tickets: prune random networks into approximations of a target, with no training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(rss.app, name="rss")
app.command("proofs")(proofs.proofs)
app.command("construct")(construct_cli.construct)
app.command("verify")(construct_cli.verify)
app.command("demo")(construct_cli.demo)
app.command("train")(train_cli.train)
app.command("report")(train_cli.report)
app.command("export")(export_cli.export)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"strongticket {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Strong lottery tickets: prune random networks into approximations of a target, with no training."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app; expected errors become ``error: ...`` on stderr and exit code 2."""
    try:
        app(args=argv, prog_name="strongticket")
    except (StrongTicketError, ValueError, FileExistsError, FileNotFoundError, IsADirectoryError,
            PermissionError) as exc:
        stderr.print(f"error: {exc}", style="bold red", highlight=False, markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
