"""Checks of the lemmas behind strongticket's constructions (constructions.md §9).

``python -m proofs_check`` (or ``strongticket proofs``) runs every check and prints a table
(check, §9 item, paper, status, seconds); ``--slow`` adds the statistical scaling checks of §9 C;
``--json`` prints one JSON object; the exit code is 1 when any check failed.

One module per paper: :mod:`~proofs_check.pensia`, :mod:`~proofs_check.lueker`,
:mod:`~proofs_check.dacunha_cnn`, :mod:`~proofs_check.mrss`, :mod:`~proofs_check.burkholz`,
:mod:`~proofs_check.counting`, and :mod:`~proofs_check.statistical` for the slow mode.
"""

from proofs_check.core import (
    FAILED,
    NUMERIC,
    PROVED,
    SKIPPED,
    STATISTICAL,
    STATUSES,
    CheckResult,
    Outcome,
)

__all__ = ["FAILED", "NUMERIC", "PROVED", "SKIPPED", "STATISTICAL", "STATUSES", "CheckResult", "Outcome"]
