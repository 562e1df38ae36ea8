"""What every command shares: the ``--seed``/``--json`` options, JSON output, progress bars, tables.

Rules every command follows:

* ``--json`` prints exactly one JSON object on stdout and nothing else (progress and tables go nowhere).
* Progress bars are drawn on stderr, and only when stderr is a terminal.
* Errors are one line on stderr (``error: ...``) and a non-zero exit, never a traceback (see ``app.main``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from strongticket.jsonio import emit_json

SeedOption = Annotated[int, typer.Option("--seed", help="Seed of every random draw (networks, instances, data order).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]

#: Columns of tables off a terminal (pipes, CI logs), instead of rich's 80 that squeeze them.
PIPE_WIDTH = 200
#: Columns of ``--help`` off a terminal: rich's 80 cut long defaults with an ellipsis; 120 fits every option.
PIPE_HELP_WIDTH = 120

stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)
stderr = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else PIPE_WIDTH)


def _readable_help() -> None:
    """Make typer's ``--help`` read like click's, for every command of the package.

    Recent typer releases render a boolean flag with a ``<bool>`` value type although it takes no value, write
    a required argument as ``{out}`` in the usage line, and lay the help out in 80 columns when stdout is not a
    terminal, which cuts long defaults with an ellipsis. Here flags get no type, usage arguments are written
    ``OUT`` / ``[OUT]`` / ``RUNS...`` (click's convention), and help off a terminal is :data:`PIPE_HELP_WIDTH` wide
    (``TERMINAL_WIDTH`` in the environment still wins). Releases without these methods render click's way
    already and are left alone.
    """
    import typer.core
    import typer.rich_utils

    if not sys.stdout.isatty() and not os.environ.get("TERMINAL_WIDTH"):
        typer.rich_utils.MAX_WIDTH = PIPE_HELP_WIDTH
    option = typer.core.TyperOption
    if hasattr(option, "display_type_rich") and not getattr(option, "_strongticket_help", False):
        type_of = option.display_type_rich

        def display_type_rich(self: Any, ctx: Any) -> str | None:
            return None if self.is_flag and self.metavar is None else type_of(self, ctx)

        option.display_type_rich = display_type_rich  # type: ignore[method-assign]
        option._strongticket_help = True  # type: ignore[attr-defined]
    argument = typer.core.TyperArgument
    if hasattr(argument, "_usage_display_name"):

        def usage_name(self: Any) -> str:
            name = self.metavar if self.metavar is not None else (self.name or "").upper()
            if not self.required:
                name = f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        argument._usage_display_name = usage_name  # type: ignore[method-assign]


_readable_help()


# JSON output lives in the bottom layer (strongticket.jsonio) so that proofs_check and the library print it the
# same way; the commands import emit_json from here.
__all__ = ["JsonOption", "SeedOption", "emit_json", "fmt", "print_table", "progress", "status_line", "stderr",
           "stdout", "track"]


def progress(enabled: bool = True) -> Progress | nullcontext[None]:
    """A rich progress bar on stderr when ``enabled`` and stderr is a terminal; otherwise a no-op context."""
    if not enabled or not sys.stderr.isatty():
        return nullcontext()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=True)


@contextmanager
def status_line(enabled: bool, initial: str) -> Iterator[Callable[[str], None] | None]:
    """A one-line live status on stderr (terminal only); yields a ``log(message)`` callback or None."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with stderr.status(initial) as status:
        yield lambda message: status.update(message)


def track(items: Iterable[Any], total: int, description: str, bar: Progress | None) -> Iterable[Any]:
    """Iterate ``items``, advancing ``bar`` (if any) by one per item."""
    if bar is None:
        yield from items
        return
    task = bar.add_task(description, total=total)
    for item in items:
        yield item
        bar.advance(task)
    bar.remove_task(task)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a rich table on stdout."""
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c, justify="right" if c not in ("method", "dist", "name", "check") else "left")
    for r in rows:
        table.add_row(*[fmt(v) for v in r])
    stdout.print(table)


def fmt(v: Any) -> str:
    """Format one table cell: floats in 3 significant digits, the rest as ``str``."""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    return str(v)
