"""``strongticket rss ...``: solve subset-sum files, benchmark the solvers, measure success curves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from strongticket.cli.common import JsonOption, SeedOption, emit_json, print_table, progress, stdout
from strongticket.errors import InputError
from strongticket.jsonio import jsonable

app = typer.Typer(help="Random subset sum (RSS/MRSS): solve instance files, benchmark solvers, success curves.",
                  no_args_is_help=True)


def parse_list(name: str, text: str, kind: type) -> list[Any]:
    """Parse a comma-separated option (``"16,21,24"``) into a list of ``kind``; ``a:b`` ranges for ints."""
    out: list[Any] = []
    empty: list[str] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if kind is int and ":" in part:
                lo, hi = part.split(":", 1)
                span = range(int(lo), int(hi) + 1)
                if not span:
                    empty.append(part)
                out.extend(span)
            else:
                out.append(kind(part))
    except ValueError:
        raise InputError(f"{name} must be a comma-separated list of {kind.__name__}s, got {text!r}") from None
    if empty:
        raise InputError(f"{name} range {empty[0]!r} is empty: a:b needs a <= b, got {text!r}")
    if not out:
        raise InputError(f"{name} must not be empty, got {text!r}")
    return out


def _device_name(device: str) -> str:
    """``device`` with the GPU's name when it is a CUDA device (for benchmark reports)."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def load_instances(path: Path, norm: str, device: str = "cpu") -> Any:
    """Read ``targets`` and ``candidates`` from a ``.npz`` or ``.safetensors`` file (never unpickles)."""
    from strongticket.subsetsum import SubsetSumProblem
    from strongticket.subsetsum.problem import check_device

    if not path.is_file():
        what = "is a directory, expected a .npz or .safetensors file" if path.is_dir() else "does not exist"
        raise InputError(f"instance file {str(path)!r} {what}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            import zipfile

            if not zipfile.is_zipfile(path):
                raise InputError(f"{str(path)!r} is not a valid .npz file (expected a zip archive of .npy arrays, "
                                 "as written by numpy.savez)")
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        elif suffix == ".safetensors":
            from safetensors.numpy import load_file

            arrays = load_file(str(path))
        else:
            raise InputError(f"instance file must be .npz or .safetensors, got {path.name!r}")
    except InputError:
        raise
    except Exception as exc:  # zip/header errors from numpy or safetensors
        raise InputError(f"cannot read {str(path)!r} as {suffix[1:]}: {exc}") from None
    missing = [k for k in ("targets", "candidates") if k not in arrays]
    if missing:
        raise InputError(f"{path.name} must hold arrays 'targets' (T,) or (T, d) and 'candidates' (T, n) or "
                         f"(T, n, d); missing {missing}, found {sorted(arrays)}")
    if device != "cpu":
        import torch

        check_device(device)
        return SubsetSumProblem(torch.tensor(arrays["targets"], device=device),
                                torch.tensor(arrays["candidates"], device=device), norm=norm)
    return SubsetSumProblem(arrays["targets"], arrays["candidates"], norm=norm)


#: Metadata marking a selections file written by ``rss solve`` (what ``--overwrite`` may replace).
SELECTION_FORMAT = "strongticket-rss-selection/1"


def _status_legend() -> str:
    from strongticket.subsetsum import Status

    return ",".join(f"{int(s)}={s.name.lower()}" for s in Status)


def _check_selection_dest(dest: Path, source: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output that would replace the instances or a file ``rss solve`` did not write."""
    from strongticket.files import check_can_create

    if dest.exists() and dest.resolve() == source.resolve():
        raise InputError(f"--out must differ from the instance file, got {str(dest)!r} for both")
    if dest.is_dir():
        raise InputError(f"--out must be a file path, got the directory {str(dest)!r}")
    if dest.exists():
        if not overwrite:
            raise InputError(f"--out {str(dest)!r} already exists; pass --overwrite to replace it")
        if _selection_format(dest) != SELECTION_FORMAT:
            raise InputError(f"--overwrite replaces only a selections file written by 'rss solve', but "
                             f"{str(dest)!r} is not one; choose another --out")
    check_can_create(dest, what="--out")


def _selection_format(path: Path) -> str | None:
    """The ``format`` metadata of a safetensors file, or None if it is not one (or has none)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            return (fh.metadata() or {}).get("format")
    except (SafetensorError, OSError):  # unreadable or not safetensors: not a file we wrote
        return None


def _cell(value: Any) -> str:
    """A summary value as a table cell: counts as ``name: count``, a missing value as ``none``."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value


@app.command("solve")
def solve_cmd(
    file: Annotated[Path, typer.Argument(help="Instances: .npz or .safetensors with 'targets' and 'candidates'.")],
    method: Annotated[str, typer.Option(help="'auto' or a method name (exact, torch, brute, milp, greedy, "
                                             "local_search, mrss_exact, ...).")] = "auto",
    objective: Annotated[str, typer.Option(help="min_error | sparsest | fixed_size.")] = "min_error",
    eps: Annotated[float | None, typer.Option(help="Error tolerance, in the units of the targets (needed by "
                                                   "sparsest; with min_error an exact method reports the instances "
                                                   "above it as infeasible).")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Seconds for the methods that stop early: per instance "
                                                          "for milp and mrss_milp, for the whole file for greedy, "
                                                          "local_search, mrss_greedy, mrss_local_search and "
                                                          "mrss_search; refused for the others, which would "
                                                          "ignore it. With auto, an exact method it picks "
                                                          "(exact up to n = 44, torch on a GPU, mrss_exact on "
                                                          "small MRSS instances) ignores it; beyond, it picks milp over "
                                                          "local_search (1-D) and mrss_milp over "
                                                          "mrss_local_search (MRSS, where mrss_search does not "
                                                          "apply) (default: no limit).")] = None,
    size: Annotated[int | None, typer.Option(help="Subset size for fixed_size (0 to n).")] = None,
    norm: Annotated[str, typer.Option(help="MRSS error norm: linf | l2.")] = "linf",
    out: Annotated[Path | None, typer.Option(help="Selections file (default: FILE with .selection.safetensors).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing selections file written by "
                                                                "'rss solve' (never any other file).")] = False,
    device: Annotated[str, typer.Option(help="cpu, or a CUDA device: 'auto' then solves with the torch method "
                                             "on the GPU (min_error).")] = "cpu",
    seed: SeedOption = 0,
    json: JsonOption = False,
) -> None:
    """Solve every instance in FILE and write the selections (safetensors: selection, sums, errors, status;
    the metadata holds the status legend, the method, the objective and eps)."""
    from strongticket.files import save_arrays_atomic
    from strongticket.subsetsum import solve
    from strongticket.subsetsum.registry import check_time_limit

    check_time_limit(method, time_limit)
    dest = out or file.with_name(file.name.split(".")[0] + ".selection.safetensors")
    problem = load_instances(file, norm, device)
    _check_selection_dest(dest, file, overwrite)
    result = solve(problem, method, objective=objective, eps=eps, time_limit=time_limit, size=size, seed=seed)
    meta = {"format": SELECTION_FORMAT, "method": result.method, "objective": objective,
            "eps": "none" if eps is None else repr(float(eps)), "size": "none" if size is None else str(size),
            "status_legend": _status_legend(), "source": file.name}
    save_arrays_atomic(dest, {"selection": result.selection.astype(np.uint8), "sums": result.sums,
                              "errors": result.errors, "status": result.status}, metadata=meta, what="--out")
    summary = {
        "file": str(file), "out": str(dest), "method": result.method, "objective": objective, "eps": eps,
        "T": problem.num_instances, "n": problem.num_candidates, "d": problem.dim,
        "seconds": result.seconds, "targets_per_s": problem.num_instances / max(result.seconds, 1e-12),
        "error_median": float(np.median(result.errors)), "error_p99": float(np.quantile(result.errors, 0.99)),
        "error_max": float(result.errors.max()), "mean_subset_size": float(result.num_selected.mean()),
        "status": result.status_counts(),
    }
    if json:
        emit_json(summary)
        return
    print_table(f"rss solve: {file.name} → {dest.name}", ["field", "value"],
                [(k, _cell(v)) for k, v in summary.items() if k not in ("file", "out")])


#: MRSS methods ``rss bench`` times: the search, its baseline descent, CP-SAT.
MRSS_BENCH_METHODS = ("mrss_search", "mrss_descent", "mrss_milp")
#: Where ``rss bench`` in MRSS mode draws its plot unless --plot says otherwise.
MRSS_BENCH_PLOT = "strongticket-out/rss_bench_mrss.png"


@app.command("bench")
def bench_cmd(
    n: Annotated[str, typer.Option("--n", help="Candidates per instance, comma list or a:b range (MRSS mode: "
                                                "default 64,128,256,512,1024).")] = "",
    methods: Annotated[str, typer.Option(help="Methods to compare on the same instances; MRSS methods "
                                              f"({', '.join(MRSS_BENCH_METHODS)}) select MRSS mode.")] = "exact,milp",
    dims: Annotated[str, typer.Option(help="MRSS mode: dimensions d, comma list (default 9,25 when --methods "
                                           "names MRSS methods); normally-scaled normal candidates, targets "
                                           "U[-1,1]^d, l_inf error, mrss_search against mrss_descent.")] = "",
    targets: Annotated[int | None, typer.Option(help="Instances for the fast methods (default 50000; MRSS "
                                                     "mode: instances per (d, n), default 64).")] = None,
    slow_targets: Annotated[int, typer.Option(help="Instances (a prefix of the same ones) for MILP/heuristics "
                                                   "(MRSS mode: for CP-SAT, mrss_milp).")] = 10,
    time_limit: Annotated[float, typer.Option(help="Seconds per instance for MILP/local search.")] = 5.0,
    dist: Annotated[str | None, typer.Option(help="Candidate law: uniform | product (1-D only) "
                                                  "\\[default: uniform].")] = None,
    repeats: Annotated[int, typer.Option(help="Timed repetitions of the fast methods (best kept).")] = 3,
    device: Annotated[str, typer.Option(help="Device of the 'torch' method's tensors: cpu, cuda, cuda:1, ...")] = "cpu",
    plot: Annotated[Path | None, typer.Option(help="MRSS mode: PNG of median error vs n, its table beside it "
                                                   f"as .json \\[default: {MRSS_BENCH_PLOT}].")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --plot file and its .json "
                                                                "table (never a directory).")] = False,
    seed: SeedOption = 0,
    json: JsonOption = False,
) -> None:
    """Throughput (targets/s), peak memory and error quantiles per method and n; CP-SAT beside the exact solver.
    With MRSS methods (or --dims): median/max l_inf error vs n of mrss_search against the plain flip/swap
    descent in the same process, throughput from CPU time, CP-SAT on a prefix when mrss_milp is named."""
    from strongticket.subsetsum import registry

    wanted = parse_list("--methods", methods, str)
    unknown = [m for m in wanted if m not in registry.METHODS]
    if unknown:
        raise InputError(f"--methods must name registered methods among {sorted(registry.METHODS)}, got unknown "
                         f"{unknown}")
    mrss = [m for m in wanted if not registry.METHODS[m].one_dim]
    if mrss or dims.strip():
        for given, option in ((dist is not None, f"--dist {dist!r}"), (device != "cpu", f"--device {device!r}")):
            if given:  # the MRSS benchmark would silently ignore them
                raise InputError(f"{option} applies to the 1-D benchmark only (the MRSS benchmark draws normally-"
                                 "scaled normal candidates and runs on the CPU); drop it, or leave out --dims and "
                                 "the MRSS methods")
        _bench_mrss(wanted, n, dims, targets, slow_targets, time_limit, Path(plot or MRSS_BENCH_PLOT), overwrite,
                    seed, json)
        return
    if plot is not None:
        raise InputError(f"--plot draws the MRSS benchmark (--dims or MRSS methods); the 1-D benchmark draws no "
                         f"plot, got --plot {str(plot)!r}")
    if overwrite:
        raise InputError("--overwrite replaces the MRSS benchmark's --plot (--dims or MRSS methods); the 1-D "
                         "benchmark writes no file: drop --overwrite")
    dist = dist or "uniform"
    import numba

    from strongticket.subsetsum.benchmark import run_benchmark

    if targets is not None and targets < 1:
        raise InputError(f"--targets must be a positive integer, got {targets}")
    ns = parse_list("--n", n or "16,21,24", int)
    with progress(not json) as bar:
        task = bar.add_task("bench", total=len(ns) * len(wanted)) if bar else None

        def step(label: str) -> None:
            if bar:
                bar.update(task, description=label, advance=1)

        rows = run_benchmark(ns, wanted, targets=50_000 if targets is None else targets, dist=dist, seed=seed,
                             repeats=repeats, slow_targets=slow_targets, time_limit=time_limit, device=device,
                             on_step=step)
    env = {"threads": numba.get_num_threads(), "dist": dist, "seed": seed, "device": _device_name(device)}
    if json:
        emit_json({"env": env, "rows": [r.__dict__ for r in rows]})
        return
    cols = ["method", "n", "T", "seconds", "targets/s", "peak MB", "I/O MB", "err median", "err p99", "err max",
            "exact × faster", "optimal share", "status"]
    print_table(f"rss bench ({dist} candidates, {env['threads']} threads, torch on {env['device']})", cols, [
        (r.method, r.n, r.T, r.seconds, r.targets_per_s, r.peak_mb, r.io_mb, r.err_median, r.err_p99, r.err_max,
         "" if r.speedup_vs_exact is None else r.speedup_vs_exact,
         "" if r.matches_exact is None else r.matches_exact,
         ", ".join(f"{k}:{v}" for k, v in r.status.items()) or "skipped") for r in rows])
    for r in rows:
        if r.note:
            stdout.print(f"{r.method} n={r.n} skipped: {r.note}")


def _bench_mrss(wanted: list[str], n: str, dims: str, targets: int | None, slow_targets: int, time_limit: float,
                plot: Path, overwrite: bool, seed: int, json: bool) -> None:
    """``rss bench`` in MRSS mode: every (d, n) cell, mrss_search against mrss_descent, CP-SAT if named."""
    import numba

    from strongticket.files import check_writable_file, write_json_atomic
    from strongticket.subsetsum import registry
    from strongticket.subsetsum.bench_figure import plot_mrss_bench
    from strongticket.subsetsum.benchmark import run_mrss_benchmark

    one_dim = [m for m in wanted if m not in MRSS_BENCH_METHODS and registry.METHODS[m].one_dim]
    if one_dim:
        raise InputError(f"--methods mixes 1-D methods {one_dim} with the MRSS benchmark (--dims or MRSS methods); "
                         f"run the 1-D methods without --dims, or name only {list(MRSS_BENCH_METHODS)}")
    other = [m for m in wanted if m not in MRSS_BENCH_METHODS]
    if other:
        raise InputError(f"--methods: the MRSS benchmark times {list(MRSS_BENCH_METHODS)} (mrss_search against "
                         f"the mrss_descent baseline, CP-SAT if named), got {other}")
    ds = parse_list("--dims", dims or "9,25", int)
    ns = parse_list("--n", n or "64,128,256,512,1024", int)
    if any(v < 1 for v in ds) or any(v < 1 for v in ns):
        raise InputError(f"--dims and --n must be positive integers, got {ds} and {ns}")
    targets = 64 if targets is None else targets
    if targets < 1 or slow_targets < 1:
        raise InputError(f"--targets and --slow-targets must be positive integers, got {targets} and {slow_targets}")
    if not time_limit > 0:
        raise InputError(f"--time-limit must be a number of seconds > 0, got {time_limit}")
    if plot.suffix.lower() != ".png":
        raise InputError(f"--plot must be a .png path, got {str(plot)!r}")
    check_writable_file(plot, overwrite=overwrite, what="--plot")  # before any work: the user's files stay theirs
    check_writable_file(plot.with_suffix(".json"), overwrite=overwrite, what="--plot's table")
    cells = {(d, v) for d in ds for v in ns} if "mrss_milp" in wanted else set()
    with progress(not json) as bar:
        task = bar.add_task("bench", total=len(ds) * len(ns)) if bar else None
        rows = run_mrss_benchmark(ds, ns, targets=targets, seed=seed, cpsat_cells=cells, cpsat_targets=slow_targets,
                                  cpsat_limit=time_limit,
                                  on_row=(lambda r: bar.update(task, description=f"d={r.d} n={r.n}", advance=1))
                                  if bar else None)
    png = plot_mrss_bench(plot, rows)
    env = {"threads": numba.get_num_threads(), "seed": seed, "candidates": "N(0,1) * N(0, I_d)",
           "targets": "U[-1,1]^d", "norm": "linf", "baseline": "mrss_descent"}
    result = {"env": env, "plot": str(png), "rows": [r.__dict__ for r in rows]}
    write_json_atomic(png.with_suffix(".json"), jsonable(result))
    if json:
        emit_json(result)
        return
    cols = ["d", "n", "T", "descent median", "descent max", "search median", "search max", "ratio",
            "descent targets/s (2 cores, CPU)", "search targets/s (2 cores, CPU)", "search wall targets/s"]
    if cells:
        cols += ["CP-SAT median", "search median, same targets"]
    print_table(f"rss bench MRSS (l_inf, {env['threads']} threads)", cols, [
        (r.d, r.n, r.targets, r.descent_median, r.descent_max, r.search_median, r.search_max, r.ratio,
         r.descent_tps_2cores, r.search_tps_2cores, r.search_wall_tps,
         *((r.cpsat_median, r.search_median_on_cpsat_targets) if cells else ())) for r in rows])
    stdout.print(f"plot: {png}  table: {png.with_suffix('.json')}")


@app.command("curve")
def curve_cmd(
    eps: Annotated[str, typer.Option(help="Tolerances for 1-D RSS, comma list.")] = "0.1,0.03,0.01,0.003,0.001",
    n: Annotated[str, typer.Option("--n", help="1-D candidate counts, comma list or a:b range.")] = "4:24",
    trials: Annotated[int, typer.Option(help="Independent instances per n (1-D).")] = 2000,
    dists: Annotated[str, typer.Option(help="1-D candidate laws: uniform, product.")] = "uniform,product",
    mrss_d: Annotated[str, typer.Option(help="MRSS dimensions (empty string: skip MRSS).")] = "1,2,3",
    mrss_eps: Annotated[float, typer.Option(help="Tolerance for the MRSS curves.")] = 0.1,
    mrss_n: Annotated[str, typer.Option(help="MRSS candidate counts.")] = "2:24",
    mrss_trials: Annotated[int, typer.Option(help="Instances per (d, n) for MRSS.")] = 200,
    confidence: Annotated[float, typer.Option(help="Success probability that defines 'required n'.")] = 0.95,
    out: Annotated[Path, typer.Option(help="Directory for rss_curve.png and rss_curve.json.")] = Path("strongticket-out"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing rss_curve.png or "
                                                                "rss_curve.json in --out (never a "
                                                                "directory).")] = False,
    seed: SeedOption = 0,
    json: JsonOption = False,
) -> None:
    """Success probability vs n for given ε (1-D: uniform and product laws; MRSS: several d), the fitted
    slope of required n against log2(1/ε) and against d, as a PNG plot and a table."""
    from strongticket.files import check_writable_file, write_json_atomic
    from strongticket.report.rss_figures import plot_rss_curves
    from strongticket.subsetsum.curves import fit_required_n_vs_d, fit_required_n_vs_log_eps, success_curve

    if not 0 < confidence < 1:
        raise InputError(f"--confidence must be in (0, 1), got {confidence}")
    eps_list = parse_list("--eps", eps, float)
    ns = parse_list("--n", n, int)
    laws = parse_list("--dists", dists, str)
    ds = parse_list("--mrss-d", mrss_d, int) if mrss_d.strip() else []
    mrss_ns = parse_list("--mrss-n", mrss_n, int)
    for name in ("rss_curve.png", "rss_curve.json"):  # before any work: the user's files stay theirs
        check_writable_file(out / name, overwrite=overwrite, what="--out")
    notes: list[str] = []
    t0 = time.perf_counter()
    total = len(laws) * len(ns) + len(ds) * len(mrss_ns)
    with progress(not json) as bar:
        task = bar.add_task("curves", total=total) if bar else None
        step = (lambda _n: bar.advance(task)) if bar else None
        curves = [success_curve(ns, eps_list, dist=law, trials=trials, seed=seed, on_step=step) for law in laws]
        mrss = [success_curve(mrss_ns, [mrss_eps], dist="normal", d=d, trials=mrss_trials, seed=seed, on_step=step)
                for d in ds]
    fits = {c.label: fit_required_n_vs_log_eps(c, confidence) for c in curves}
    lin_d, exp_d = fit_required_n_vs_d(mrss, confidence) if len(mrss) >= 2 else (None, None)
    png = plot_rss_curves(out / "rss_curve.png", curves, fits, mrss, exp_d, confidence)
    result = {
        "confidence": confidence, "seconds": time.perf_counter() - t0, "plot": str(png), "notes": notes,
        "one_dim": [{"dist": c.label, "trials": c.trials, "ns": c.ns, "eps": c.eps, "success": c.success,
                     "required_n": c.required_n(confidence), "fit_vs_log2_inv_eps": fits[c.label].__dict__}
                    for c in curves],
        "mrss": [{"d": c.d, "eps": c.eps[0], "trials": c.trials, "ns": c.ns, "success": c.success[:, 0],
                  "required_n": c.required_n(confidence)[0]} for c in mrss],
        "mrss_fit_vs_d": None if lin_d is None else lin_d.__dict__,
        "mrss_exponent_of_d": None if exp_d is None else exp_d.__dict__,
    }
    write_json_atomic(out / "rss_curve.json", jsonable(result))
    if json:
        emit_json(result)
        return
    rows = []
    for c in curves:
        f = fits[c.label]
        req = c.required_n(confidence)
        rows.append((c.label, ", ".join(f"{e:g}:{_required(r, c)}" for e, r in zip(c.eps, req)),
                     _estimate(f.slope, f.points, 2), _interval(f), _estimate(f.r2, f.points, 2)))
    print_table(f"required n for P(error ≤ ε) ≥ {confidence:g} ({trials} trials per n)",
                ["dist", "ε:n", "slope per log2(1/ε)", "95% CI", "R²"], rows)
    if mrss:
        print_table(f"MRSS (Gaussian vectors, ℓ∞, ε={mrss_eps:g}, {mrss_trials} trials)",
                    ["d", "required n", "counting bound d·log2(1/ε)"],
                    [(c.d, _required(c.required_n(confidence)[0], c), c.d * np.log2(1 / mrss_eps)) for c in mrss])
        if exp_d is not None:
            stdout.print(f"fitted exponent of d: {_estimate(exp_d.slope, exp_d.points, 2)}, 95% CI {_interval(exp_d)} "
                         f"(the theorem allows 3)", markup=False)
    for note in notes:
        stdout.print(note)
    stdout.print(f"plot: {png}  table: {out / 'rss_curve.json'}")


def _required(n: float, curve: Any) -> str:
    """A required n, or ``> n_max`` when no measured n reached the confidence."""
    return f"{n:.0f}" if np.isfinite(n) else f">{int(max(curve.ns))}"


def _estimate(value: float, points: int, needed: int) -> str:
    """A fitted value, or why there is none (a line needs 2 finite points)."""
    if points < needed or not np.isfinite(value):
        return f"n/a (needs >= {needed} points, got {points})"
    return f"{value:.3g}"


def _interval(fit: Any) -> str:
    """A fit's 95 % interval of the slope, or why there is none (it needs >= 3 points)."""
    lo, hi = fit.slope_ci
    if fit.points < 3 or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"n/a (needs >= 3 points, got {fit.points})"
    return f"[{lo:.2f}, {hi:.2f}]"

