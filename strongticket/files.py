"""Atomic file writes and checksums: nothing a user loads is ever half-written.

Every writer goes to a temporary name in the destination's directory, flushes and fsyncs it, then
renames it over the destination (atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success rename it to ``dest``, on error remove it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(dest: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted UTF-8 JSON to ``dest`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(dest, text.encode("utf-8"))


def save_tensors_atomic(dest: str | os.PathLike[str], tensors: Mapping[str, Any],
                        metadata: Mapping[str, str] | None = None) -> None:
    """Save a mapping of name -> torch tensor as safetensors to ``dest`` atomically."""
    from safetensors.torch import save_file

    with atomic_path(dest) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata=dict(metadata) if metadata else None)


def save_arrays_atomic(dest: str | os.PathLike[str], arrays: Mapping[str, Any],
                       metadata: Mapping[str, str] | None = None) -> None:
    """Save a mapping of name -> numpy array as safetensors to ``dest`` atomically."""
    import numpy as np
    from safetensors.numpy import save_file

    with atomic_path(dest) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp),
                  metadata=dict(metadata) if metadata else None)


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest``; on success it replaces ``dest`` whole.

    With ``overwrite=False`` an existing non-empty ``dest`` is an error, raised before anything is written.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"output directory {str(dest)!r} already exists and is not empty; "
                              "choose another path or pass --overwrite")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json_object(path: str | os.PathLike[str], error: type[Exception] = ValueError) -> dict[str, Any]:
    """Read the JSON object in ``path``; a file that is not UTF-8 JSON, or holds something other than an
    object, raises ``error`` with a one-line message naming the file and its directory."""
    path = Path(path)
    where = f"{path.name} in {str(path.parent)!r}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{where} must hold a JSON object, got {type(data).__name__}")
    return data


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Return the hex sha256 digest of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
