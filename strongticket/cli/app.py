"""Root of the ``strongticket`` command line: registers the command groups and turns errors into one line."""

from __future__ import annotations

import re
import sys
from typing import Annotated, NoReturn

import typer

try:  # typer >= 0.20 vendors its own copy of click; older releases use click itself
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:
    from click.exceptions import NoArgsIsHelpError, UsageError

from strongticket import __version__
from strongticket.cli import bench as bench_cli
from strongticket.cli import compact as compact_cli
from strongticket.cli import compare as compare_cli
from strongticket.cli import construct as construct_cli
from strongticket.cli import demo as demo_cli
from strongticket.cli import essential as essential_cli
from strongticket.cli import export as export_cli
from strongticket.cli import proofs, rss
from strongticket.cli import train as train_cli
from strongticket.cli import verify as verify_cli
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
app.add_typer(bench_cli.app, name="bench")
app.command("proofs")(proofs.proofs)
app.command("construct")(construct_cli.construct)
app.add_typer(verify_cli.app, name="verify")
app.command("demo")(demo_cli.demo)
app.command("train")(train_cli.train)
app.command("report")(train_cli.report)
app.command("export")(export_cli.export)
app.command("compact")(compact_cli.compact)
app.command("compare")(compare_cli.compare)
app.command("essential")(essential_cli.essential)


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
    """Console entry point: run the app; every expected error becomes one ``error: ...`` line and exit code 2.

    Expected errors are our own :class:`StrongTicketError` family (bad input, damaged files, unwritable
    outputs, infeasible constructions), usage errors (unknown command or option, missing argument, a value
    of the wrong type), the operating system's refusals about the user's paths and running out of memory (a
    size the user chose, such as ``--hidden`` or ``--count``, too large for the machine). Anything else is a
    bug and keeps its traceback.
    """
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="strongticket", standalone_mode=False)
    except NoArgsIsHelpError:
        code = 0  # the help text was already printed
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "strongticket"
        _fail(f"{exc.format_message()} (see '{where} --help')")
    except StrongTicketError as exc:
        _fail(str(exc))
    except (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        # the operating system refusing a path the user named (a file to read, a directory to list)
        _fail(f"{exc.filename!r}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
    except (MemoryError, RuntimeError) as exc:
        needed = _allocation(exc)
        if needed is None:
            raise
        _fail(f"out of memory: {needed}; give smaller sizes (widths, sample or input counts, batch sizes)")
    except (KeyboardInterrupt, typer.Abort):
        stderr.print("interrupted", highlight=False, markup=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _allocation(exc: BaseException) -> str | None:
    """What an out-of-memory error tried to allocate (``"the command tried to allocate 320.0 GB at once"``), or
    None when ``exc`` is not one: a :class:`MemoryError`, torch's ``OutOfMemoryError`` (CUDA) or the
    ``RuntimeError`` of torch's CPU allocator."""
    text = str(exc)
    if not (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text):
        return None
    match = re.search(r"allocate (\d+) bytes", text)  # torch's CPU allocator
    if match is not None:
        return f"the command tried to allocate {int(match.group(1)) / 1e9:.1f} GB at once"
    match = re.search(r"allocate ([\d.]+ [KMGTP]?i?B)", text)  # numpy, CUDA: "Tried to allocate 20.00 GiB"
    return f"the command tried to allocate {match.group(1)} at once" if match else "an allocation failed"


def _fail(message: str) -> NoReturn:
    stderr.print(f"error: {' '.join(message.split())}", style="bold red", highlight=False, markup=False)
    sys.exit(2)


if __name__ == "__main__":
    main()
