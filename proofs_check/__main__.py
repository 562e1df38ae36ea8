"""``python -m proofs_check``: run the checks and print the table (see :mod:`proofs_check.runner`)."""

from proofs_check.runner import main

raise SystemExit(main())
