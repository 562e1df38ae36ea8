"""Atomic file writes and checksums: nothing a user loads is ever half-written, nothing of the user's deleted.

Every writer goes to a temporary name in the destination's directory, flushes and fsyncs it, then
renames it over the destination (atomic on POSIX within one file system). A directory of outputs (a ticket,
a run) is built the same way, whole (:func:`atomic_directory`), and replaces only a directory of the same kind
(:func:`check_writable_directory`). Every failure of the file system (read-only, full, a parent that is a
file, no permission) becomes one :class:`~strongticket.errors.OutputError` naming the destination the caller
gave, never a temporary name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from strongticket.errors import InputError, OutputError


def _describe(dest: Path, what: str | None) -> str:
    """``"--out 'runs/a'"`` when the caller says how the user named ``dest``, else ``"'runs/a'"``."""
    return f"{what} {str(dest)!r}" if what else repr(str(dest))


def _reason(exc: BaseException) -> str:
    """The system's reason for ``exc`` without any file name (ours are temporary: the user never gave them)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    # safetensors (Rust) reports I/O failures as "Error while serializing: I/O error: <reason> (os error 28)"
    match = re.search(r"I/O error: (.*?)(?: \(os error \d+\))?$", text)
    return match.group(1) if match else text


def output_error(dest: str | os.PathLike[str], exc: BaseException, what: str | None = None) -> OutputError:
    """The one-line :class:`OutputError` for a failed write of ``dest``: ``cannot write <what> 'dest': <reason>``."""
    dest = Path(dest)
    reason = _reason(exc)
    return OutputError(f"cannot write {_describe(dest, what)}: {reason}", path=str(dest), reason=reason)


def check_can_create(dest: str | os.PathLike[str], *, what: str | None = None) -> None:
    """Check, before any work, that ``dest`` could be created: its nearest existing ancestor is a directory
    we may write into (no parent path is a file).

    Raises
    ------
    OutputError
        One line naming ``what`` and ``dest`` and the ancestor at fault.
    """
    dest = Path(dest)
    parent = Path(os.path.abspath(dest)).parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        reason = f"{str(parent)!r} is a file, not a directory"
        raise OutputError(f"cannot write {_describe(dest, what)}: {reason}", path=str(dest), reason=reason)
    if not os.access(parent, os.W_OK | os.X_OK):
        reason = f"no permission to write in {str(parent)!r}"
        raise OutputError(f"cannot write {_describe(dest, what)}: {reason}", path=str(dest), reason=reason)


def _make_parent(dest: Path, what: str | None) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        check_can_create(dest, what=what)  # names the ancestor that is a file
        raise
    except OSError as exc:
        raise output_error(dest, exc, what) from None


def _umask() -> int:
    """The process's umask, read afresh at every write (a program may change it between writes).

    Linux shows it in /proc/self/status; elsewhere setting it is the only way to read it, which leaves it 0
    for an instant (a file another thread creates in that instant would get mode 0666).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable; file systems that cannot fsync a directory (EINVAL) are skipped."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def _is_output_error(exc: BaseException) -> bool:
    """OS-level write failures, including those safetensors reports as its own exception type."""
    return isinstance(exc, OSError) or (type(exc).__name__ == "SafetensorError" and "I/O error" in str(exc))


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], *, what: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success rename it to ``dest``, on error remove it.

    ``what`` is how the user named ``dest`` (``"--out"``); a failure of the file system, in the body too,
    raises :class:`OutputError` naming ``dest``, never the temporary path. The file gets the mode a plain
    ``open`` would give it (``0o666 & ~umask``, not ``mkstemp``'s 0600) so that it can be shared, and the
    directory is fsynced after the rename so that the rename survives a crash.
    """
    dest = Path(dest)
    mode = 0o666 & ~_umask()
    try:
        _make_parent(dest, what)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(dest, exc, what) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
        _fsync_directory(dest.parent)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if _is_output_error(exc):
            raise output_error(dest, exc, what) from None
        raise


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes, *, what: str | None = None) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest, what=what) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(dest: str | os.PathLike[str], obj: Any, *, what: str | None = None) -> None:
    """Write ``obj`` as indented, key-sorted UTF-8 JSON to ``dest`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(dest, text.encode("utf-8"), what=what)


def save_tensors_atomic(dest: str | os.PathLike[str], tensors: Mapping[str, Any],
                        metadata: Mapping[str, str] | None = None, *, what: str | None = None) -> None:
    """Save a mapping of name -> torch tensor as safetensors to ``dest`` atomically."""
    from safetensors.torch import save_file

    with atomic_path(dest, what=what) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata=dict(metadata) if metadata else None)


def save_arrays_atomic(dest: str | os.PathLike[str], arrays: Mapping[str, Any],
                       metadata: Mapping[str, str] | None = None, *, what: str | None = None) -> None:
    """Save a mapping of name -> numpy array as safetensors to ``dest`` atomically."""
    import numpy as np
    from safetensors.numpy import save_file

    with atomic_path(dest, what=what) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp),
                  metadata=dict(metadata) if metadata else None)


def check_writable_file(dest: str | os.PathLike[str], *, overwrite: bool, what: str) -> None:
    """Check, before any work, that the single output file ``dest`` (a table, a plot) may be written.

    A missing ``dest`` is fine; an existing file is replaced only with ``overwrite=True`` (the user's own file
    is never replaced unasked); a directory, or a symbolic link, is never replaced.

    Raises
    ------
    InputError
        One line naming ``what`` (``"--out"``) and ``dest`` when it exists and may not be replaced.
    OutputError
        When ``dest`` cannot be created (a parent path is a file, no permission to write in its parent).
    """
    dest = Path(dest)
    name = _describe(dest, what)
    if dest.is_symlink():
        raise InputError(f"{name} is a symbolic link; refusing to replace it: give the file itself or another path")
    if dest.is_dir():
        raise InputError(f"{name} is a directory, expected a file path")
    if dest.exists() and not overwrite:
        raise InputError(f"{name} already exists; pass --overwrite to replace it, or choose another path")
    check_can_create(dest, what=what)


def check_writable_directory(dest: str | os.PathLike[str], *, overwrite: bool, marker: str,
                             what: str = "output directory",
                             is_marker: Callable[[Path], bool] | None = None) -> bool:
    """Check, before any work, that ``dest`` may become a directory this project writes.

    A missing ``dest`` or an empty directory is fine. An existing directory may be replaced only with
    ``overwrite=True`` and only when it holds ``marker`` (the file every directory of that kind holds:
    ``ticket.json`` for a ticket, ``config.json`` for a run): anything else, a plain file, a symbolic link
    or a directory without the marker, was not written by strongticket and is never deleted.

    Parameters
    ----------
    dest : path
        The directory the user asked for.
    overwrite : bool
        Whether the user allowed replacing an existing directory of this kind.
    marker : str
        Name of the file that marks a directory of this kind.
    what : str
        How the user named ``dest`` (``"--out"``, ``"OUT"``, ``"ticket directory"``), for the messages.
    is_marker : callable, optional
        ``is_marker(dest / marker) -> bool``: a stricter test of the marker (its format); default: it is a file.

    Returns
    -------
    bool
        True when ``dest`` exists (an empty directory, or a marked one with ``overwrite``) and will be replaced.

    Raises
    ------
    InputError
        One line naming ``what`` and ``dest`` when ``dest`` is something strongticket may not replace.
    OutputError
        When ``dest`` cannot be created (a parent path is a file, no permission to write in its parent).
    """
    dest = Path(dest)
    name = _describe(dest, what)
    check_can_create(dest, what=what)
    if not os.path.lexists(dest):
        return False
    if dest.is_symlink():
        raise InputError(f"{name} is a symbolic link; refusing to replace it: give the directory itself or "
                         "another path")
    if not dest.is_dir():
        raise InputError(f"{name} is a file, not a directory strongticket wrote; refusing to replace it: "
                         "choose another path")
    if not any(dest.iterdir()):
        return True
    marked = (is_marker or Path.is_file)(dest / marker)
    if not marked:
        action = "replace it" if overwrite else "write into it"
        raise InputError(f"{name} is a directory that strongticket did not write (no {marker}); refusing to "
                         f"{action}: choose another path")
    if not overwrite:
        raise InputError(f"{name} already exists (it holds {marker}); pass --overwrite to replace it, or choose "
                         "another path")
    return True


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike[str], *, overwrite: bool = False, marker: str,
                     what: str = "output directory",
                     is_marker: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest``; on success it replaces ``dest`` whole.

    ``dest`` is checked by :func:`check_writable_directory` before anything is written (and again just
    before the rename, in case it changed meanwhile). The body must write ``marker`` into the temporary
    directory, so that a later ``overwrite`` recognises it. An existing ``dest`` is moved aside, the new
    directory renamed into place, and only then the old one removed; if the rename fails the old one is
    put back. A failure of the file system, in the body too, raises :class:`OutputError` naming ``dest``
    (and the file being written inside it), never the temporary directory. The directory gets the mode a
    plain ``mkdir`` would give it (``0o777 & ~umask``, not ``mkdtemp``'s 0700) and its parent is fsynced
    after the rename.
    """
    dest = Path(dest)
    mode = 0o777 & ~_umask()
    check_writable_directory(dest, overwrite=overwrite, marker=marker, what=what, is_marker=is_marker)
    try:
        _make_parent(dest, what)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as exc:
        raise output_error(dest, exc, what) from None
    try:
        yield tmp
        os.chmod(tmp, mode)
        if check_writable_directory(dest, overwrite=overwrite, marker=marker, what=what, is_marker=is_marker):
            old = tmp.with_suffix(".old")
            os.replace(dest, old)
            try:
                os.replace(tmp, dest)
            except BaseException:
                os.replace(old, dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        _fsync_directory(dest.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputError) and exc.path is not None and _is_within(Path(exc.path), tmp):
            inner = Path(exc.path).relative_to(tmp)
            raise OutputError(f"cannot write {_describe(dest, what)}: {exc.reason} (writing {inner})",
                              path=str(dest), reason=exc.reason) from None
        if _is_output_error(exc):
            raise output_error(dest, exc, what) from None
        raise


def _is_within(path: Path, directory: Path) -> bool:
    try:
        path.relative_to(directory)
    except ValueError:
        return False
    return True


def read_toml(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Parse the TOML file ``path``; an unreadable or malformed file is one :class:`InputError` naming ``what``
    (how the user gave it: ``--config``, ``CONFIG``) and the path."""
    import tomllib

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"cannot parse {what} {str(path)!r} as TOML: {exc}") from None


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


def save_figure_atomic(fig: Any, dest: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write the matplotlib figure ``fig`` to ``dest`` as PNG, atomically (as every other file here), then close
    it so that long sweeps do not accumulate open figures; return the path."""
    import matplotlib.pyplot as plt

    dest = Path(dest)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return dest


def has_format(path: str | os.PathLike[str], fmt: str) -> bool:
    """Whether ``path`` is a JSON object file whose ``format`` is ``fmt``: the marker test of every directory
    strongticket writes (a ticket's ``ticket.json``, a comparison's ``compare.json`` ...). A missing, unreadable
    or foreign file is simply not ours (False), never an error."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        return read_json_object(path).get("format") == fmt
    except (OSError, ValueError):
        return False


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Return the hex sha256 digest of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
