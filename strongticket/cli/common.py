"""What every command shares: the ``--seed``/``--json`` options, JSON output, progress bars, tables.

Rules every command follows:

* ``--json`` prints exactly one JSON object on stdout and nothing else (progress and tables go nowhere).
* Progress bars are drawn on stderr, and only when stderr is a terminal.
* Errors are one line on stderr (``error: ...``) and a non-zero exit, never a traceback (see ``app.main``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from strongticket.jsonio import emit_json, jsonable

SeedOption = Annotated[int, typer.Option("--seed", help="Seed of every random draw (networks, instances, data order).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]

# Off a terminal (pipes, CI logs) tables keep their full width instead of being squeezed to 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


# JSON output lives in the bottom layer (strongticket.jsonio) so that proofs_check and the library print it the
# same way; the commands import emit_json from here, and _jsonable is its former name here.
_jsonable = jsonable
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
