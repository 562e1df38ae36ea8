"""Exception families that callers (and the CLI) catch by type.

Every message names the argument, what was expected and what was received, so that the CLI can
print it as one line with no traceback.
"""

from __future__ import annotations


class StrongTicketError(Exception):
    """Base class of every error strongticket raises on purpose."""


class InputError(StrongTicketError, ValueError):
    """An argument or input file has the wrong value, shape or format."""


class MethodUnavailableError(InputError):
    """The requested method cannot handle this input (too large, wrong device, ...); the message says which to use."""


class TicketFormatError(StrongTicketError):
    """A ticket directory is damaged, incomplete, of another format version, or not a ticket at all."""


class DataError(StrongTicketError):
    """A dataset file is missing, damaged or of the wrong format (never downloaded: say where it was looked for)."""


class InfeasibleError(StrongTicketError):
    """A construction cannot meet its accuracy target with the given width (the message says what width is needed)."""


class OutputError(StrongTicketError):
    """An output could not be written: a read-only or full file system, a parent path that is a file, no
    permission. The message names the destination the user gave and the system's reason, never a temporary
    file name: ``cannot write --out 'runs/a': No space left on device``.

    Attributes
    ----------
    path : str or None
        The file or directory that could not be written (as the user gave it).
    reason : str or None
        The system's reason (``strerror``), without the path.
    """

    def __init__(self, message: str, *, path: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
