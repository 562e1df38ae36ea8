"""What every command shares: the ``--seed``/``--json`` options, JSON output, progress bars, tables.

Rules every command follows:

* ``--json`` prints exactly one JSON object on stdout and nothing else (progress and tables go nowhere).
* Progress bars are drawn on stderr, and only when stderr is a terminal.
* Errors are one line on stderr (``error: ...``) and a non-zero exit, never a traceback (see ``app.main``).
"""

from __future__ import annotations

import json
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

SeedOption = Annotated[int, typer.Option("--seed", help="Seed of every random draw (networks, instances, data order).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]

# Off a terminal (pipes, CI logs) tables keep their full width instead of being squeezed to 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return obj


def emit_json(obj: dict[str, Any]) -> None:
    """Print ``obj`` as one JSON object on stdout (numpy values and non-finite floats made JSON-safe)."""
    sys.stdout.write(json.dumps(_jsonable(obj), allow_nan=False) + "\n")
    sys.stdout.flush()


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
