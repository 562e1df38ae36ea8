"""Malach et al. (2020), the "find one" baseline: per target weight, keep the single best random product.

E. Malach, G. Yehudai, S. Shalev-Shwartz, O. Shamir, "Proving the Lottery Ticket Hypothesis: Pruning is All
You Need", ICML 2020 (arXiv 2002.00585). A depth-L ReLU target is approximated by a weight-subnetwork of a
random depth-2L network of *polynomial* width: each target weight is matched by one hidden neuron whose
random weights already approximate it, which needs about 1/eps samples per weight for per-weight error eps
(a covering argument; the theorem's polynomial is O(d^4 L^2) for fixed eps according to Pensia et al.).

Here the random network, the +- split and the driver are those of :mod:`strongticket.construct.pensia` on the
one 2L engine (:mod:`strongticket.construct.engine`), so the two constructions differ only in the chooser
(:data:`FIND_ONE`): per instance, the candidate product ``v*u`` closest to the target weight, or none when
``|w|`` is already closer (the empty subset); an instance that misses eps with its first ``n`` candidates
looks at every neuron of its sign in the block. Comparing the samples per weight each needs for the same eps
(with ``wider_pool=False``) measures the logarithmic-vs-polynomial width claim instead of quoting it
(``docs/constructions.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strongticket.construct import engine, pensia
from strongticket.construct.blocks import Chooser, single_reach
from strongticket.subsetsum.problem import Status
from strongticket.ticket import Ticket

METHOD = "malach2020"


def find_one(targets: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per instance, select the single candidate nearest the target, or none if that is no better than 0.

    Parameters
    ----------
    targets : float64 array, shape (T,)
    candidates : float64 array, shape (T, c)

    Returns
    -------
    selection : bool array, shape (T, c)
    status : int8 array, shape (T,)  (all ``optimal``: the best single-or-empty choice is exact)
    info : dict
    """
    err = np.abs(targets[:, None] - candidates)
    best = err.argmin(axis=1)
    take = err[np.arange(len(targets)), best] < np.abs(targets)
    selection = np.zeros(candidates.shape, dtype=bool)
    selection[np.arange(len(targets))[take], best[take]] = True
    return selection, np.full(len(targets), Status.OPTIMAL, dtype=np.int8), {"method": "find_one"}


#: The find-one chooser: the nearest single product (or none); an instance that misses with its first ``n``
#: candidates looks at every neuron of its sign in the block, like the subset-sum chooser.
FIND_ONE = Chooser("find_one", find_one, single_reach)


def construct(target: Any, *, per_weight_eps: float | None = None, eps: float | None = None,
              samples: int | None = None, **kwargs: Any) -> Ticket:
    """The find-one ticket: same arguments as :func:`strongticket.construct.pensia.construct`.

    ``samples`` (per weight per sign) must be given: the baseline has no logarithmic theorem width; the
    number it needs is what :mod:`strongticket.verify.scaling` measures.
    """
    return prepare(target, per_weight_eps=per_weight_eps, eps=eps, samples=samples, **kwargs).build()


def prepare(target: Any, *, per_weight_eps: float | None = None, eps: float | None = None,
            samples: int | None = None, **kwargs: Any) -> engine.Prepared:
    """:func:`construct` checked and planned, solving nothing (see :func:`strongticket.construct.pensia.prepare`)."""
    if samples is None:
        raise pensia.InputError("the find-one baseline needs samples (per weight per sign) to be given")
    unused = sorted(key for key in ("solver", "objective", "time_limit") if key in kwargs)
    if unused:  # find-one has no solver to configure: refuse rather than ignore
        raise pensia.InputError(f"the find-one baseline takes no {', '.join(unused)} (it picks the nearest single "
                                f"product), got {', '.join(f'{k}={kwargs[k]!r}' for k in unused)}")
    return pensia.prepare(target, eps=eps, per_weight_eps=per_weight_eps, samples=samples,
                          _chooser=FIND_ONE, _method=METHOD, **kwargs)


__all__ = ["FIND_ONE", "METHOD", "construct", "find_one", "prepare"]
