"""Width scaling: the smallest samples per weight reaching eps, by bisection, against theory and find-one.

For a target and a per-weight error ``eps'``, :func:`min_samples` bisects over ``n`` (candidates per subset-sum
instance; the block size, hidden neurons per input, follows from ``n`` by
:func:`strongticket.construct.blocks.block_size_for` and is reported with it) for the smallest ``n`` at which
every one of several seeds yields a ticket with every weight within ``eps'``. Success is monotone in ``n`` only
in distribution, so the answer is "the smallest n in the bisection's path where all seeds succeeded", reported
with the seeds used.
:func:`scaling_table` does that for Pensia (subset sum) and the Malach find-one baseline and adds the
theorem's ``n`` (:mod:`strongticket.subsetsum.theory`).

Structured tickets (``strongticket verify scaling``): :func:`structured_min_width` finds the smallest width
``H`` (intermediate channels per input channel) at which synthetic instances of dimension ``D`` (``k^2`` at
kernel, ``k^2 g`` at group, ``k^2 c_out`` at filter granularity) reach ``eps`` in l_inf, solved by the
structured construction's own :func:`strongticket.construct.structured.solve_pair`;
:func:`structured_scaling` sweeps ``D`` and ``eps`` and fits the exponent of ``H`` against ``D``, beside the
counting lower bound (``n >= D log2(1/eps)`` candidates, about ``H/2`` of the ``H`` channels) and the MRSS
theorem's ``D^3 log(1/eps) (log(1/eps) + log D)`` (Becchetti et al. 2022, "On the Multidimensional Random
Subset Sum Problem"; its constant is unknown, so only the shape is drawn).
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

    from strongticket.files import save_figure_atomic

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
    save_figure_atomic(fig, path, dpi=120)


# ------------------------------------------------------------------------------------------------ structured
#: The MRSS theorem's sample-size shape (Becchetti et al. 2022): n = C D^3 log(1/eps) (log(1/eps) + log D).
THEOREM_EXPONENT = 3
#: Defaults of ``strongticket verify scaling``: 2x2 kernels, 3x3 kernels (kernel granularity), 3x3 slices
#: shared by 2 outputs (group) and by the 4 outputs of a small layer (filter).
DEFAULT_DIMS = (4, 9, 18, 36)
DEFAULT_EPS = (0.5, 0.25)


@dataclass(frozen=True)
class StructuredWidth:
    """Smallest width per input channel at which structured instances of one dimension reach ``eps``.

    Attributes
    ----------
    dimension : int
        ``D`` of the instances (``k^2``, ``k^2 g`` or ``k^2 c_out``).
    eps : float
        l_inf error to reach per instance.
    width : int or None
        ``H``, intermediate channels per input channel (both signs of ``u``; the ``u > 0`` ones, about ``H/2``,
        are the candidates of an instance on inputs >= 0); None when ``width_max`` did not reach ``eps``.
    width_max : int
    targets : int
        Instances per width tried (targets U[-1, 1]^D).
    quantile : float
        Fraction of the targets that must reach ``eps``.
    fraction_at_width, median_error_at_width : float or None
        At ``width``; None when not reached.
    counting_width : float
        ``2 D log2(1/eps)``: below it the ~``H/2`` candidates cannot cover the cube (counting lower bound).
    tried : tuple of (int, float, float)
        ``(H, fraction reaching eps, median error)`` in the order tried.
    seconds, cpu_seconds : float
        Wall and process CPU time of the search.
    """

    dimension: int
    eps: float
    width: int | None
    width_max: int
    targets: int
    quantile: float
    fraction_at_width: float | None
    median_error_at_width: float | None
    counting_width: float
    tried: tuple[tuple[int, float, float], ...]
    seconds: float
    cpu_seconds: float


def synthetic_layer(dimension: int, targets: int, width: int, seed: int) -> tuple[Any, Any, Any]:
    """``targets`` structured instances of one dimension, as one layer of the construction sees them.

    Returns ``(kernel (1, T, D) float64 U[-1, 1], u (T, width) float32 N(0, 1), v (1, T, width, D) float32
    N(0, 1))``: input channel ``j`` is instance ``j`` (the slice of one output), intermediate channel ``r``
    gives the candidate ``|u[j, r]| v[0, j, r]`` when ``u[j, r] > 0``, exactly the samples
    :func:`strongticket.construct.structured.solve_pair` builds. Each array has its own generator
    (``numpy.random.default_rng([seed, i])``) and is drawn channel-major, so a smaller width gives the first
    channels of a larger one: the candidate sets of increasing widths are nested.
    """
    import numpy as np

    kernel = np.random.default_rng([seed, 0]).uniform(-1.0, 1.0, (1, targets, dimension))
    u = np.random.default_rng([seed, 1]).standard_normal((width, targets), dtype=np.float32).T
    v = np.random.default_rng([seed, 2]).standard_normal((width, targets, dimension), dtype=np.float32)
    return kernel, np.ascontiguousarray(u), np.ascontiguousarray(np.transpose(v, (1, 0, 2))[None])


def structured_min_width(dimension: int, eps: float, *, targets: int = 16, quantile: float = 0.9,
                         width_max: int = 8192, seed: int = 0, precision: float = 1.25,
                         search_options: dict[str, Any] | None = None) -> StructuredWidth:
    """Smallest ``H`` (doubling from 8, then bisection to a ratio ``precision``) at which a ``quantile`` of the
    targets reach ``eps``, solved by the construction's own
    :func:`strongticket.construct.structured.solve_pair` (inputs >= 0: the ``u > 0`` side)."""
    import numpy as np

    from strongticket.construct import structured

    start, cpu = time.perf_counter(), time.process_time()
    kernel, u, v = synthetic_layer(dimension, targets, width_max, seed)
    tried: list[tuple[int, float, float]] = []
    result: dict[int, tuple[float, float]] = {}

    def ok(width: int) -> bool:
        out = structured.solve_pair(kernel, u[:, :width], v[:, :, :width], [np.arange(1)], eps,
                                    negative=np.zeros(targets, dtype=bool), seed=seed,
                                    options=dict(search_options or {}))
        err = out["errors_pos"][0]
        frac, med = float(np.mean(err <= eps)), float(np.median(err))
        tried.append((width, frac, med))
        result[width] = (frac, med)
        return frac >= quantile

    lo, hi = 0, min(8, width_max)
    while not ok(hi):
        if hi >= width_max:
            return StructuredWidth(dimension, eps, None, width_max, targets, quantile, None, None,
                                   2 * dimension * np.log2(1 / eps), tuple(tried), time.perf_counter() - start,
                                   time.process_time() - cpu)
        lo, hi = hi, min(2 * hi, width_max)
    while hi - lo > 1 and hi > precision * lo:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    frac, med = result[hi]
    return StructuredWidth(dimension, eps, hi, width_max, targets, quantile, frac, med,
                           2 * dimension * float(np.log2(1 / eps)), tuple(tried), time.perf_counter() - start,
                           time.process_time() - cpu)


def fit_exponent(dims: Sequence[int], widths: Sequence[int]) -> float | None:
    """Least-squares slope of ``log width`` against ``log D`` (None with fewer than two distinct ``D``)."""
    import numpy as np

    if len(set(dims)) < 2:
        return None
    slope, _ = np.polyfit(np.log(np.asarray(dims, dtype=float)), np.log(np.asarray(widths, dtype=float)), 1)
    return float(slope)


def theorem_shape(dimension: int, eps: float) -> float:
    """``D^3 log(1/eps) (log(1/eps) + log D)``, the MRSS theorem's sample size without its constant."""
    import math

    return dimension ** THEOREM_EXPONENT * math.log(1 / eps) * (math.log(1 / eps) + math.log(dimension))


def structured_scaling(dims: Sequence[int] = DEFAULT_DIMS, eps_values: Sequence[float] = DEFAULT_EPS, *,
                       targets: int = 16, quantile: float = 0.9, width_max: int = 8192, seed: int = 0,
                       search_options: dict[str, Any] | None = None,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Width needed against the instance dimension, per eps, with the fitted exponent (see
    :func:`structured_min_width`; a dimension that misses ``eps`` at ``width_max`` stops that eps's sweep).

    Returns
    -------
    dict
        ``rows`` (one per (eps, D) tried: the :class:`StructuredWidth` fields and ``theorem_shape``),
        ``fits`` (per eps: ``exponent`` of width against D over the reached dimensions, ``dims``),
        ``theorem_exponent`` 3, ``counting_exponent`` 1, ``settings``.
    """
    from strongticket.validation import check_float, check_int, check_generator_seed, check_unit_open

    dims = [check_int("--dims", d) for d in dims]
    eps_values = [check_unit_open("--eps", e) for e in eps_values]
    if not dims or not eps_values:
        raise InputError("--dims and --eps need at least one value each")
    targets = check_int("--targets", targets)
    quantile = check_float("--quantile", quantile, lo=0.0, hi=1.0, hi_open=False)
    width_max = check_int("--max-width", width_max, lo=2)
    seed = check_generator_seed("--seed", seed)
    say = log or (lambda _m: None)
    rows, fits = [], []
    for eps in eps_values:
        reached: list[tuple[int, int]] = []
        for d in sorted(dims):
            r = structured_min_width(d, eps, targets=targets, quantile=quantile, width_max=width_max, seed=seed,
                                     search_options=search_options)
            rows.append({**asdict(r), "theorem_shape": theorem_shape(d, eps)})
            say(f"eps {eps:g}, D {d}: width {r.width if r.width else f'> {width_max}'} "
                f"(counting bound {r.counting_width:.0f}), {r.cpu_seconds:.1f} s CPU")
            if r.width is None:
                break  # larger dimensions need more still
            reached.append((d, r.width))
        fits.append({"eps": eps, "exponent": fit_exponent(*zip(*reached)) if len(reached) > 1 else None,
                     "dims": [d for d, _ in reached]})
    return {"rows": rows, "fits": fits, "theorem_exponent": THEOREM_EXPONENT, "counting_exponent": 1,
            "settings": {"dims": dims, "eps": eps_values, "targets": targets, "quantile": quantile,
                         "width_max": width_max, "seed": seed, "search_options": dict(search_options or {}),
                         "targets_law": "U[-1, 1]^D", "weights_law": "N(0, 1)", "norm": "linf",
                         "width": "intermediate channels per input channel (both signs; inputs >= 0)"}}


def plot_structured_scaling(result: dict[str, Any], path: Any) -> None:
    """Width against D on log-log axes per eps: measured, counting lower bound ``2 D log2(1/eps)``, and the
    theorem's ``D^3`` shape (constant unknown: drawn through the smallest measured point)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from strongticket.files import save_figure_atomic

    fig, ax = plt.subplots(figsize=(5.8, 4.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, fit in enumerate(result["fits"]):
        eps, c = fit["eps"], colors[n % len(colors)]
        rows = [r for r in result["rows"] if r["eps"] == eps]
        pts = [(r["dimension"], r["width"]) for r in rows if r["width"]]
        slope = "" if fit["exponent"] is None else f", fitted exponent {fit['exponent']:.2f}"
        if pts:
            ax.loglog(*zip(*pts), marker="o", color=c, label=f"measured, eps {eps:g}{slope}")
            d0, w0 = pts[0]
            ds = [r["dimension"] for r in rows]
            ax.loglog(ds, [w0 * theorem_shape(d, eps) / theorem_shape(d0, eps) for d in ds], ls=":", color=c,
                      label=f"theorem shape D^3 log(1/eps)(log(1/eps)+log D), eps {eps:g}")
        missed = [r for r in rows if not r["width"]]
        for r in missed:
            ax.scatter([r["dimension"]], [r["width_max"]], marker="^", color=c)
        ax.loglog([r["dimension"] for r in rows], [r["counting_width"] for r in rows], ls="--", color=c, lw=1,
                  label=f"counting lower bound 2 D log2(1/eps), eps {eps:g}")
    ax.set_xlabel("instance dimension D (k^2, k^2 g, k^2 c_out)")
    ax.set_ylabel("intermediate channels per input H")
    ax.set_title("structured tickets: width needed vs dimension (^: not reached)", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)
