"""``strongticket construct``, ``verify`` and ``demo``: target -> ticket directory -> error table.

Thin: parse, call :mod:`strongticket.construct` / :mod:`strongticket.verify`, print a table or one JSON object.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from strongticket.cli.common import JsonOption, SeedOption, emit_json, print_table, stdout
from strongticket.errors import InputError
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import NetSpec
from strongticket.ticket import Ticket, human_count

CONSTRUCTIONS = ("pensia", "malach")


def _opt(*names: str, help: str) -> Any:
    return typer.Option(*names, help=help)


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a ``.safetensors`` file (pickled checkpoints are refused: they execute code)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise InputError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix != ".safetensors":
        raise InputError(f"checkpoint must be a .safetensors state_dict (pickled .pt files are not loaded), "
                         f"got {path.name!r}")
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"checkpoint {str(path)!r} is not a valid safetensors file: {exc}") from None


def load_state_into(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module``; an :class:`InputError` saying which keys or shapes do not fit."""
    own = module.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise InputError(f"checkpoint does not fit {what}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise InputError(f"checkpoint does not fit {what}: {k!r} has shape {tuple(state[k].shape)}, "
                             f"expected {tuple(v.shape)}")
    module.load_state_dict({k: state[k].to(v.dtype) for k, v in own.items()})


def distribution_for(name: str, target: torch.nn.Module) -> WeightDistribution:
    """``target-range`` -> U[min w, max w] of the target (Pensia's experiment); otherwise the named law's defaults."""
    if name == "target-range":
        w = torch.cat([p.detach().reshape(-1) for p in target.parameters()])
        return WeightDistribution.uniform(float(w.min()), float(w.max()))
    return WeightDistribution(name)


def construct(
    out: Annotated[Path, typer.Argument(help="Ticket directory to write.")],
    model: Annotated[str | None, _opt("--model", help="Zoo name of the target (with --checkpoint).")] = None,
    spec: Annotated[Path | None, _opt("--spec", help="JSON NetSpec of the target (with --checkpoint).")] = None,
    checkpoint: Annotated[Path | None, _opt("--checkpoint", help="Target state_dict (.safetensors).")] = None,
    method: Annotated[str, _opt("--method", help="pensia (subset sum) or malach (find one).")] = "pensia",
    eps: Annotated[float | None, _opt("--eps", help="Network error in (0, 1); gives the per-weight eps.")] = None,
    per_weight_eps: Annotated[float | None, _opt("--per-weight-eps", help="Error per target weight in (0, 1).")] = None,
    delta: Annotated[float, _opt("--delta", help="Failure probability for the theorem's width.")] = 0.01,
    samples: Annotated[int | None, _opt("--samples", help="Samples per weight per sign (default: theorem).")] = None,
    distribution: Annotated[str, _opt("--distribution", help="uniform, normal, ..., or target-range.")] = "uniform",
    objective: Annotated[str, _opt("--objective", help="min_error or sparsest.")] = "min_error",
    solver: Annotated[str, _opt("--solver", help="Subset-sum method (auto, exact, ...).")] = "auto",
    num_classes: Annotated[int, _opt("--num-classes", help="Zoo model outputs.")] = 10,
    in_channels: Annotated[int, _opt("--in-channels", help="Zoo model input channels.")] = 1,
    image_size: Annotated[int, _opt("--image-size", help="Zoo model input size.")] = 28,
    width: Annotated[float, _opt("--width", help="Zoo width multiplier.")] = 1.0,
    bias: Annotated[bool, _opt("--bias/--no-bias", help="Zoo model with biases.")] = False,
    strict: Annotated[bool, _opt("--strict/--no-strict", help="Fail if a weight misses its eps.")] = True,
    include_weights: Annotated[bool, _opt("--include-weights", help="Also write weights.safetensors.")] = False,
    overwrite: Annotated[bool, _opt("--overwrite", help="Replace an existing ticket directory.")] = False,
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Construct a strong ticket for a target (zoo name + checkpoint, or spec + checkpoint) into OUT."""
    from strongticket.construct import malach, pensia

    if method not in CONSTRUCTIONS:
        raise InputError(f"--method must be one of {CONSTRUCTIONS}, got {method!r}")
    if (model is None) == (spec is None):
        raise InputError("give the target as --model NAME or --spec SPEC.json (exactly one), with --checkpoint")
    if checkpoint is None:
        raise InputError("--checkpoint (the target's trained weights, .safetensors) is required")
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output directory {str(out)!r} already exists and is not empty; pass --overwrite")
    state = load_checkpoint(checkpoint)
    if model is not None:
        from strongticket.nets.zoo import build_model

        target = build_model(model, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                             width=width, bias=bias)
        load_state_into(target, state, f"zoo model {model!r}")
    else:
        try:
            target_spec = NetSpec.from_dict(json.loads(spec.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read spec {str(spec)!r}: {exc}") from None
        target = target_spec.build()
        load_state_into(target, state, f"spec {spec.name!r}")
    target.eval()
    dist = distribution_for(distribution, target)
    start = time.perf_counter()
    if method == "pensia":
        ticket = pensia.construct(target, eps=eps, per_weight_eps=per_weight_eps, delta=delta, samples=samples,
                                  seed=seed, distribution=dist, solver=solver, objective=objective, strict=strict)
    else:
        ticket = malach.construct(target, eps=eps, per_weight_eps=per_weight_eps, delta=delta, samples=samples,
                                  seed=seed, distribution=dist, strict=strict)
    seconds = time.perf_counter() - start
    ticket.save(out, include_weights=include_weights, overwrite=overwrite)
    summary = {"ticket": str(out), "method": ticket.provenance["method"], "seconds": round(seconds, 2),
               "max_per_weight_error": ticket.provenance["max_error"],
               "per_weight_eps": ticket.provenance["per_weight_eps"],
               "weights_above_eps": ticket.provenance["weights_above_eps"],
               "samples_per_weight": ticket.provenance["samples_per_weight"],
               "params": ticket.num_params, "kept": ticket.num_kept, "density": ticket.density}
    if json_out:
        emit_json(summary)
        return
    print_table(f"ticket written to {out}", ["name", "params", "kept", "density"],
                [[r["name"], r["params"], r["kept"], r["density"]] for r in ticket.density_table()])
    stdout.print(f"max per-weight error {summary['max_per_weight_error']:.3g} "
                 f"(eps' = {summary['per_weight_eps']:.3g}), {seconds:.1f} s")


def verify_report(ticket: Ticket, *, radius: float, count: int, restarts: int, steps: int, seed: int,
                  dataset: str | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """Every check of a ticket against its recorded target, as one JSON-able dict."""
    from strongticket.verify.accuracy import accuracy
    from strongticket.verify.certified import certified_bound
    from strongticket.verify.measure import adversarial_error, empirical_error, error_on, target_module

    weights = ticket.random_weights()
    g = ticket.to_module(torch.float64, weights=weights)
    f = target_module(ticket)
    nonneg = bool(ticket.provenance.get("nonneg_input", False))
    report: dict[str, Any] = {"radius": radius, "nonneg_input": nonneg,
                              "max_per_weight_error": ticket.provenance.get("max_error"),
                              "per_weight_eps": ticket.provenance.get("per_weight_eps"),
                              "params": ticket.num_params, "kept": ticket.num_kept, "density": ticket.density}
    if not nonneg:
        report["empirical_sphere"] = empirical_error(ticket, f, domain="sphere", count=count, radius=radius,
                                                     seed=seed, module=g).sup
        report["empirical_ball"] = empirical_error(ticket, f, domain="ball", count=count, radius=radius,
                                                   seed=seed + 1, module=g).sup
        report["adversarial"] = adversarial_error(ticket, f, radius=radius, restarts=restarts, steps=steps,
                                                  seed=seed, module=g).sup
        report["certified"] = certified_bound(ticket, f, radius=radius, weights=weights).bound
    if dataset:
        from strongticket.train.data import load_dataset

        ds = load_dataset(dataset, data_dir=data_dir)
        x = ds.test_x
        report["data"] = dataset
        report["target_accuracy"] = accuracy(f, x, ds.test_y)
        report["ticket_accuracy"] = accuracy(g, x, ds.test_y)
        report["empirical_data"] = error_on(f, g, x.double()).sup
        data_radius = float(x.reshape(len(x), -1).norm(dim=1).max())
        report["certified_data"] = certified_bound(ticket, f, radius=data_radius, nonneg_input=True,
                                                   weights=weights).bound
        report["data_radius"] = data_radius
    return report


def verify(
    ticket_dir: Annotated[Path, typer.Argument(help="Ticket directory.")],
    radius: Annotated[float, _opt("--radius", help="Input ball radius (l2).")] = 1.0,
    count: Annotated[int, _opt("--count", help="Random inputs for the empirical error.")] = 2000,
    restarts: Annotated[int, _opt("--restarts", help="Adversarial restarts.")] = 4,
    steps: Annotated[int, _opt("--steps", help="Gradient steps per restart.")] = 50,
    data: Annotated[str | None, _opt("--data", help="Also measure on a dataset's test split (digits, mnist, ...).")] = None,
    data_dir: Annotated[Path | None, _opt("--data-dir", help="Where mnist/fashion-mnist live.")] = None,
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Error of a ticket against its recorded target: empirical, adversarial, certified (and accuracy on --data)."""
    ticket = Ticket.load(ticket_dir)
    report = verify_report(ticket, radius=radius, count=count, restarts=restarts, steps=steps, seed=seed,
                           dataset=data, data_dir=data_dir)
    if json_out:
        emit_json({"ticket": str(ticket_dir), **report})
        return
    rows = [[k, v] for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    print_table(f"ticket {ticket_dir}", ["check", "value"], rows)
    if "certified" in report:
        ok = report["certified"] >= max(report["empirical_sphere"], report["empirical_ball"], report["adversarial"])
        stdout.print("certified bound dominates every measured error" if ok else
                     "[bold red]certified bound below a measured error: report this[/]")


# ----- demo ---------------------------------------------------------------------------------------

def _train_digits_target(ds, seed: int, hidden: int = 32, steps: int = 300) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, 10, bias=False))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-3)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(ds.train_x), ds.train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def demo(
    out: Annotated[Path, _opt("--out", help="Directory for the plot and the ticket.")] = Path("demo-output"),
    per_weight_eps: Annotated[float, _opt("--per-weight-eps", help="Error per target weight.")] = 0.01,
    samples: Annotated[int, _opt("--samples", help="Samples per weight per sign.")] = 15,
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Train a small MLP on scikit-learn's digits, prune a random 2L network into it, verify, plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from strongticket.construct import malach, pensia
    from strongticket.train.data import load_dataset
    from strongticket.verify.accuracy import accuracy

    t0 = time.perf_counter()
    ds = load_dataset("digits")
    target = _train_digits_target(ds, seed)
    # the theorem's U[-1, 1], widened when the target has weights beyond what sums of products reach easily
    w_max = max(float(p.detach().abs().max()) for p in target.parameters())
    a = max(1.0, w_max ** 0.5)
    dist = WeightDistribution.uniform(-a, a)
    ticket = pensia.construct(target, per_weight_eps=per_weight_eps, samples=samples, seed=seed,
                              distribution=dist, strict=False)
    sparse = pensia.construct(target, per_weight_eps=per_weight_eps, samples=samples, seed=seed,
                              distribution=dist, objective="sparsest", strict=False)
    found = malach.construct(target, per_weight_eps=per_weight_eps, samples=samples, seed=seed,
                             distribution=dist, strict=False)
    radius = 1.0
    rows, results = [], {}
    for name, tk in (("pensia min_error", ticket), ("pensia sparsest", sparse), ("malach find-one", found)):
        rep = verify_report(tk, radius=radius, count=500, restarts=2, steps=30, seed=seed)
        rep["ticket_accuracy"] = accuracy(tk.to_module(torch.float64), ds.test_x, ds.test_y)
        results[name] = rep
        rows.append([name, tk.num_params, tk.num_kept, rep["max_per_weight_error"], rep["empirical_sphere"],
                     rep["adversarial"], rep["certified"], rep["ticket_accuracy"]])
    target_acc = accuracy(target, ds.test_x, ds.test_y)
    # the log-vs-polynomial picture: max per-weight error against samples per weight, both choosers
    ns = [2, 4, 8, 12, 16]
    curves: dict[str, list[float]] = {"pensia (subset sum)": [], "malach (find one)": []}
    for n in ns:
        curves["pensia (subset sum)"].append(pensia.construct(
            target, per_weight_eps=per_weight_eps, samples=n, seed=seed, distribution=dist, strict=False,
            record_target=False).provenance["max_error"])
        curves["malach (find one)"].append(malach.construct(
            target, per_weight_eps=per_weight_eps, samples=n, seed=seed, distribution=dist, strict=False,
            record_target=False).provenance["max_error"])
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, ys in curves.items():
        ax.semilogy(ns, ys, marker="o", label=label)
    ax.axhline(per_weight_eps, color="grey", ls="--", lw=1, label=f"eps' = {per_weight_eps:g}")
    ax.set_xlabel("samples per weight per sign (n)")
    ax.set_ylabel("max per-weight error")
    ax.set_title("digits MLP 64-32-10: pruning a random 2L net")
    ax.legend()
    fig.tight_layout()
    plot = out / "demo_error_vs_samples.png"
    from strongticket.files import atomic_path

    with atomic_path(plot) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    ticket.save(out / "ticket", overwrite=True)
    seconds = time.perf_counter() - t0
    summary = {"target_accuracy": target_acc, "tickets": results, "curve": {"samples": ns, **curves},
               "plot": str(plot), "ticket": str(out / "ticket"), "seconds": round(seconds, 1)}
    if json_out:
        emit_json(summary)
        return
    print_table(f"digits MLP 64-32-10 (target test accuracy {target_acc:.4f}); random 2L net, n = {samples}, "
                f"eps' = {per_weight_eps:g}, errors on the unit ball",
                ["method", "params", "kept", "max w err", "sampled", "adversarial", "certified", "test acc"], rows)
    stdout.print(f"kept {human_count(ticket.num_kept)} of {human_count(ticket.num_params)} random weights; "
                 f"plot: {plot}; ticket: {out / 'ticket'} ({seconds:.1f} s)")
