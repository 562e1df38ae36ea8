"""Statistical scaling checks (§9 C), run with ``--slow``."""

from __future__ import annotations

CHECKS: tuple = ()
