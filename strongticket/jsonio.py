"""JSON output shared by every layer: numpy values, paths and non-finite floats made JSON-safe, one object a line.

A bottom-layer module (it imports nothing from strongticket), so that the library, ``proofs_check`` and the
command line print JSON the same way without the lower layers depending on the CLI.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, is_dataclass
from typing import IO, Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """``obj`` with every value JSON can hold: containers recursively, numpy arrays and scalars as Python values,
    dataclass instances as dicts, path-like objects as strings, NaN as null and +-inf as ``"inf"``/``"-inf"``.

    Anything else is returned unchanged (``json.dumps`` then rejects what it cannot encode).
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """One line of strict JSON (no NaN or Infinity tokens) for ``jsonable(obj)``."""
    return json.dumps(jsonable(obj), allow_nan=False)


def emit_json(obj: Any, stream: IO[str] | None = None) -> None:
    """Write ``obj`` as one JSON line to ``stream`` (default ``sys.stdout``) and flush."""
    out = sys.stdout if stream is None else stream
    out.write(dumps(obj) + "\n")
    out.flush()
