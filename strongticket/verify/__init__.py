"""Checking a ticket against its target: measured errors, a certified bound, task accuracy, width scaling.

* :mod:`.measure`: sup of ``|f(x) - g(x)|`` over sampled inputs (sphere, ball, data) and by projected
  gradient ascent in the input ball;
* :mod:`.certified`: an upper bound from the ticket's actual per-weight errors and the target's norms
  (``docs/constructions.md``, "The certified bound"), which dominates every measured error;
* :mod:`.accuracy`: test accuracy of ticket and target;
* :mod:`.scaling`: the smallest width reaching eps against the theorem's width and the find-one baseline.
"""

from strongticket.verify.certified import CertifiedBound, certified_bound
from strongticket.verify.measure import adversarial_error, empirical_error, target_module

__all__ = ["CertifiedBound", "adversarial_error", "certified_bound", "empirical_error", "target_module"]
