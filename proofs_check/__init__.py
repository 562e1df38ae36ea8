"""Checks of the lemmas behind strongticket's constructions (see ``docs/constructions.md``).

``python -m proofs_check`` (or ``strongticket proofs``) runs every check and prints a table
(check, item, paper, status, seconds); ``--slow`` adds the statistical scaling checks (items C);
``--json`` prints one JSON object; the exit code is 1 when any check failed.

Each check carries an item label, a letter and a number: **A** exact identities (sympy or exact arithmetic),
**B** solver contracts, **C** statistical scaling laws (slow), **D** network-level inequalities and
structural facts of built tickets. ``--only A4`` runs the checks of one item.

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
