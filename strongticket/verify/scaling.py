"""Width scaling: the smallest samples per weight reaching eps, by bisection, against theory and find-one.

For a target and a per-weight error ``eps'``, :func:`min_samples` bisects over ``n`` (candidates per subset-sum
instance; the block size, hidden neurons per input, follows from ``n`` by
:func:`strongticket.construct.blocks.block_size_for` and is reported with it) for the smallest ``n`` at which
every one of several seeds yields a ticket with every weight within ``eps'``. Success is monotone in ``n`` only in distribution, so the answer
is "the smallest n in the bisection's path where all seeds succeeded", reported with the seeds used.
:func:`scaling_table` does that for Pensia (subset sum) and the Malach find-one baseline and adds the
theorem's ``n`` (:mod:`strongticket.subsetsum.theory`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from strongticket.errors import InputError


@dataclass(frozen=True)
class WidthResult:
    """Smallest samples per weight found for one construction (None when not reached by ``n_max``)."""

    method: str
    samples: int | None
    hidden_per_input: int | None
    n_max: int
    seeds: tuple[int, ...]
    max_error_at_samples: float | None
    seconds: float
    tried: tuple[tuple[int, bool], ...]


def _succeeds(build: Callable[..., Any], target: Any, eps: float, n: int, seeds: Sequence[int],
              kwargs: dict[str, Any]) -> tuple[bool, float, int]:
    worst, block = 0.0, 0
    for s in seeds:
        t = build(target, per_weight_eps=eps, samples=n, seed=s, strict=False, record_target=False, **kwargs)
        worst = max(worst, t.provenance["max_error"])
        block = t.provenance["block_size"]
        if t.provenance["weights_above_eps"]:
            return False, worst, block
    return True, worst, block


def min_samples(build: Callable[..., Any], target: Any, per_weight_eps: float, *, seeds: Sequence[int] = (0, 1, 2),
                n_max: int = 31, method: str = "", construct_kwargs: dict[str, Any] | None = None) -> WidthResult:
    """Bisection over ``n`` in ``[1, n_max]`` (after doubling up from 1) for the smallest all-seeds success.

    ``construct_kwargs`` go to ``build`` (e.g. ``nonneg_input=True`` for image data). The wider-pool retry is
    off unless ``construct_kwargs`` turn it on: the measurement is of ``n``, the candidates each instance is
    given, and the retry would lend a missed instance the rest of its block.
    """
    if n_max < 1:
        raise InputError(f"n_max must be >= 1, got {n_max}")
    start = time.perf_counter()
    tried: list[tuple[int, bool]] = []
    errs: dict[int, float] = {}
    blocks: dict[int, int] = {}

    def ok(n: int) -> bool:
        good, worst, blocks[n] = _succeeds(build, target, per_weight_eps, n, seeds,
                                           {"wider_pool": False, **(construct_kwargs or {})})
        tried.append((n, good))
        errs[n] = worst
        return good

    lo, hi = 0, 1  # lo fails (n=0 trivially), hi to be tested
    while hi <= n_max and not ok(hi):
        lo, hi = hi, min(2 * hi, n_max) if hi < n_max else n_max + 1
    if hi > n_max:
        return WidthResult(method, None, None, n_max, tuple(seeds), None, time.perf_counter() - start, tuple(tried))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return WidthResult(method, hi, blocks[hi], n_max, tuple(seeds), errs[hi], time.perf_counter() - start,
                       tuple(tried))


def theory_columns(target: Any, per_weight_eps: float, delta: float = 0.01) -> dict[str, Any]:
    """The theorems' samples per weight for ``target`` at ``eps'``.

    * ``pensia``: :func:`strongticket.construct.pensia.theory_samples` at the calibrated constant
      (``pensia.PENSIA_C``), ``pensia_C1`` the same form with C = 1 (the constant is unknown in the literature);
    * ``lueker``: Lueker's Corollary 2.5 with the union bound over all instances (C = 1);
    * ``counting_lower``: ``log2(1/eps')``, below which no law can cover [-1, 1] (per instance);
    * ``malach``: the find-one pool size for one product within ``eps'`` with probability ``1 - delta/N``.
    """
    from strongticket.construct import pensia
    from strongticket.construct.blocks import read_fc_target
    from strongticket.subsetsum import theory

    fc = read_fc_target(target)
    instances = 2 * sum(w.size for w in fc.weights)
    return {
        "pensia": pensia.theory_samples(fc, per_weight_eps, delta),
        "pensia_C1": pensia.theory_samples(fc, per_weight_eps, delta, C=1.0),
        "pensia_C": pensia.PENSIA_C,
        "lueker": int(theory.rss_sample_size(per_weight_eps, delta, instances)),
        "counting_lower": theory.counting_lower_bound(per_weight_eps),
        "malach": int(theory.malach_samples_per_weight(per_weight_eps, delta / instances)),
    }


def scaling_table(target: Any, per_weight_eps_values: Sequence[float], *, seeds: Sequence[int] = (0, 1, 2),
                  n_max_pensia: int = 31, n_max_malach: int = 256, delta: float = 0.01,
                  construct_kwargs: dict[str, Any] | None = None, skip_malach: bool = False,
                  log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows ``{eps', pensia n, malach n, theory n}`` for each per-weight eps (see module docstring)."""
    from strongticket.construct import malach, pensia
    from strongticket.construct.blocks import read_fc_target

    say = log or (lambda _m: None)
    fc = read_fc_target(target)
    rows = []
    for eps in per_weight_eps_values:
        p = min_samples(pensia.construct, target, eps, seeds=seeds, n_max=n_max_pensia, method="pensia",
                        construct_kwargs=construct_kwargs)
        say(f"eps'={eps:g}: pensia n={p.samples} (tried {p.tried})")
        m = None
        if not skip_malach:
            m = min_samples(malach.construct, target, eps, seeds=seeds, n_max=n_max_malach, method="malach",
                            construct_kwargs=construct_kwargs)
            say(f"eps'={eps:g}: malach n={m.samples}")
        th = theory_columns(target, eps, delta)
        rows.append({"per_weight_eps": eps, "pensia": asdict(p), "malach": asdict(m) if m else None,
                     "theory_samples": th["pensia"], "theory": th, "target_widths": list(fc.widths)})
    return rows


def plot_scaling(rows: list[dict[str, Any]], path: Any, title: str) -> None:
    """Samples per weight against 1/eps' on a log x-axis (log y too): subset sum, find-one, theory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from strongticket.files import atomic_path

    inv = [1 / r["per_weight_eps"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for key, label, marker in (("pensia", "subset sum (Pensia)", "o"), ("malach", "find one (Malach)", "s")):
        pts = [(x, r[key]["samples"]) for x, r in zip(inv, rows) if r[key] and r[key]["samples"]]
        if pts:
            ax.loglog(*zip(*pts), marker=marker, label=label)
    th = [(x, r["theory_samples"]) for x, r in zip(inv, rows) if r["theory_samples"]]
    if th:
        c = rows[0].get("theory", {}).get("pensia_C")
        ax.loglog(*zip(*th), ls="--", color="grey", label=f"theorem (C = {c:g}, calibrated)" if c else "theorem")
    fm = [(x, r["theory"]["malach"]) for x, r in zip(inv, rows) if r.get("theory", {}).get("malach")]
    if fm:
        ax.loglog(*zip(*fm), ls=":", color="grey", label="find-one pool (union bound)")
    lb = [(x, r["theory"]["counting_lower"]) for x, r in zip(inv, rows) if r.get("theory", {}).get("counting_lower")]
    if lb:
        ax.loglog(*zip(*lb), ls="-.", color="black", lw=1, label="counting lower bound")
    ax.set_xlabel("1 / per-weight eps")
    ax.set_ylabel("samples per weight n (candidates per instance)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
