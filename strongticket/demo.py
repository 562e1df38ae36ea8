"""The demo: train a small digits MLP, prune a random 2L network into it twice, verify both tickets, plot.

One call of :func:`run_demo` shows the whole pipeline on scikit-learn's digits (shipped with scikit-learn,
so no download): a 64-``hidden``-10 ReLU MLP without biases is trained by the library's training loop
(:func:`strongticket.train.loop.fit`), the 2L construction of Pensia et al. (2020) prunes a random network
into it once with the ``min_error`` subset-sum objective and once with ``sparsest``, and each ticket is
checked by :func:`strongticket.verify.report.verify_report` and on the test digits. A small CNN on the same
digits is then pruned from a random CNN by the construction of da Cunha, Natale, Viennot (2022) and checked in
the l_inf norms of its bound, and a tanh MLP is pruned from a random network of depth L+1 (Burkholz 2022).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.distributions import check_seed
from strongticket.validation import check_int, check_unit_open

#: The two subset-sum objectives the demo compares (:func:`strongticket.subsetsum.solve`).
OBJECTIVES = ("min_error", "sparsest")


def digits_mlp(hidden: int, seed: int) -> nn.Sequential:
    """An untrained 64-``hidden``-10 ReLU MLP without biases, U[-1/sqrt(fan_in), 1/sqrt(fan_in)] initialised.

    The initial weights are drawn from a generator seeded with ``seed`` (the global RNG is not touched).
    """
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, 10, bias=False))
    with torch.no_grad():
        for layer in (model[1], model[3]):
            bound = 1.0 / layer.in_features ** 0.5
            layer.weight.copy_((torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * bound)
    return model


def train_digits_target(data: Any, seed: int, hidden: int = 32, steps: int = 300) -> nn.Module:
    """:func:`digits_mlp` trained by full-batch Adam (lr 5e-3, weight decay 1e-3) for ``steps`` steps.

    Full batch, so each epoch of :func:`strongticket.train.loop.fit` is one step.
    """
    from strongticket.train.config import OptimConfig
    from strongticket.train.loop import fit

    optim = OptimConfig(optimizer="adam", lr=5e-3, weight_decay=1e-3, epochs=steps)
    return fit(digits_mlp(hidden, seed), data, optim, batch_size=None, seed=seed)


def digits_cnn(channels: int, seed: int) -> nn.Sequential:
    """An untrained CNN for 1x8x8 digits: Conv2d(1, ``channels``, 3, padding 1) + bias, ReLU, 2x2 max-pool,
    Flatten, Linear(16 ``channels``, 10) + bias; PyTorch's default laws drawn from a generator seeded by ``seed``."""
    from strongticket.nets.zoo import default_init

    model = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(16 * channels, 10))
    default_init(model, torch.Generator().manual_seed(seed))
    return model


def run_cnn_part(data: Any, *, channels: int, steps: int, per_weight_eps: float, samples: int, count: int,
                 seed: int) -> dict[str, Any]:
    """Train :func:`digits_cnn`, prune a random 2L CNN into it (every layer, biases included), verify in l_inf.

    Returns the target's accuracy and the ticket's verify report (:func:`strongticket.verify.report.verify_report`
    on the test digits) with the construction's seconds, block size and misses.
    """
    from strongticket.construct import cnn2l
    from strongticket.train.config import OptimConfig
    from strongticket.train.loop import fit
    from strongticket.verify.report import verify_report

    t0 = time.perf_counter()
    target = fit(digits_cnn(channels, seed), data, OptimConfig(optimizer="adam", lr=1e-2, epochs=steps),
                 batch_size=None, seed=seed)
    t1 = time.perf_counter()
    # 96 neurons per channel: the union-bound block size (64 here) leaves a pool of ~27 products per sign
    # per channel, whose sums miss the few weights near 1 of this small target at some seeds (outside range)
    ticket = cnn2l.construct(target, per_weight_eps=per_weight_eps, samples=samples, input_shape=(1, 8, 8),
                             nonneg_input=True, seed=seed, strict=False, block_size=96)
    t2 = time.perf_counter()
    report = verify_report(ticket, radius=1.0, count=count, seed=seed, dataset="digits")
    report.update({"architecture": f"conv 1->{channels} 3x3 + bias, relu, maxpool 2, linear {16 * channels}->10 "
                                   "+ bias",
                   "target_weights": int(sum(p.numel() for p in target.parameters())),
                   "weights_above_eps": ticket.provenance["weights_above_eps"],
                   "block_size": ticket.provenance["block_size"],
                   "seconds": {"train": round(t1 - t0, 3), "construct": round(t2 - t1, 3),
                               "verify": round(time.perf_counter() - t2, 3)}})
    return report


def run_lplus1_part(data: Any, *, hidden: int, steps: int, rho: int, eps: float, count: int,
                    seed: int) -> dict[str, Any]:
    """Train a 64-``hidden``-10 tanh MLP, prune a random depth-(L+1) network into it (Burkholz 2022), verify in l_inf.

    The target is trained with weight decay 1e-2 (weights stay within about 1) and the random weights are
    U[-0.7, 0.7], on which the construction puts its per-layer scales (a small copying layer for the Taylor
    remainder of tanh, the reciprocal on the next layer; ``lplus1.first_layer_scales``).
    """
    from strongticket.construct import lplus1
    from strongticket.nets.distributions import WeightDistribution
    from strongticket.nets.zoo import default_init
    from strongticket.train.config import OptimConfig
    from strongticket.train.loop import fit
    from strongticket.verify.report import verify_report

    t0 = time.perf_counter()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden, bias=False), nn.Tanh(), nn.Linear(hidden, 10, bias=False))
    default_init(model, torch.Generator().manual_seed(seed))
    target = fit(model, data, OptimConfig(optimizer="adam", lr=5e-3, weight_decay=1e-2, epochs=steps),
                 batch_size=None, seed=seed)
    t1 = time.perf_counter()
    ticket = lplus1.construct(target, eps=eps, rho=rho, seed=seed, distribution=WeightDistribution.uniform(-0.7, 0.7),
                              nonneg_input=True, input_shape=(1, 8, 8))
    t2 = time.perf_counter()
    report = verify_report(ticket, radius=1.0, count=count, seed=seed, dataset="digits")
    report.update({"architecture": f"64-{hidden}-10, tanh, no bias", "rho": rho,
                   "depth": len(ticket.spec.linear_layers), "target_depth": 2,
                   "target_weights": int(sum(p.numel() for p in target.parameters())),
                   "instances_above_eps": ticket.provenance["instances_above_eps"],
                   "seconds": {"train": round(t1 - t0, 3), "construct": round(t2 - t1, 3),
                               "verify": round(time.perf_counter() - t2, 3)}})
    return report


def check_demo_output(out: Path, *, overwrite: bool = False) -> None:
    """Raise an :class:`InputError` before any work if the demo may not write into ``out``.

    ``out`` must be a directory or not exist; its ``ticket`` sub-directory must be missing, empty or a ticket
    (a previous demo's, which is replaced). An existing ``demo.png`` is replaced with ``overwrite``, or when
    ``ticket`` holds a ticket (the directory is a previous demo's: rerunning the demo replaces its own output);
    otherwise it is the user's file and is refused. A directory is never replaced.
    """
    from strongticket.files import check_writable_file
    from strongticket.ticket import check_ticket_destination

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file, expected a directory (or a path that does not exist)")
    previous = check_ticket_destination(out / "ticket", overwrite=True, what="--out ticket directory")
    check_writable_file(out / "demo.png", overwrite=overwrite or previous, what="--out plot")


def run_demo(out: Path, *, per_weight_eps: float = 0.01, samples: int = 21, hidden: int = 32, steps: int = 300,
             count: int = 1000, restarts: int = 3, attack_steps: int = 40, seed: int = 0,
             cnn_channels: int = 4, overwrite: bool = False) -> dict[str, Any]:
    """Train, construct ``min_error`` and ``sparsest`` tickets, verify both, write a plot and a ticket.

    Parameters
    ----------
    out : Path
        Directory receiving ``demo.png`` and ``ticket/`` (the ``min_error`` ticket).
    per_weight_eps : float in (0, 1)
        Error allowed per target weight (eps').
    samples : int
        Random products per weight, n.
    hidden : int >= 1
        Hidden width of the target MLP.
    steps : int >= 1
        Full-batch training steps of the target.
    count, restarts, attack_steps : int >= 1
        Sampled inputs, ascent restarts and ascent steps of :func:`strongticket.verify.report.verify_report`.
    seed : int >= 0
        Seed of the target's initialisation, its data order and the random network.
    cnn_channels : int >= 1
        Channels of the digits CNN target (:func:`run_cnn_part`).
    overwrite : bool
        Replace an existing ``demo.png`` in ``out`` that a previous demo did not write (:func:`check_demo_output`).

    Returns
    -------
    dict
        JSON-able summary: ``target``, ``random_network``, per-objective ``tickets`` (each a verify report
        with ``ticket_accuracy``, ``weights_above_eps``, ``weights``, ``mean_subset_size``, ``seconds``),
        ``cnn`` (:func:`run_cnn_part`), ``lplus1`` (:func:`run_lplus1_part`), ``plot``, ``ticket``, ``seconds``.
    """
    from strongticket.construct import pensia
    from strongticket.construct.distribution import widened_uniform
    from strongticket.report.demo_plot import plot_demo
    from strongticket.train.data import load_dataset
    from strongticket.verify.accuracy import accuracy
    from strongticket.verify.report import check_options, verify_report

    check_int("--hidden", hidden)
    check_int("--samples", samples)
    check_int("steps", steps)
    check_int("cnn_channels", cnn_channels)
    seed = check_seed(seed)
    check_unit_open("--per-weight-eps", per_weight_eps)
    check_options(radius=1.0, count=count, restarts=restarts, steps=attack_steps, seed=seed)
    check_demo_output(out, overwrite=overwrite)

    t0 = time.perf_counter()
    ds = load_dataset("digits")
    target = train_digits_target(ds, seed, hidden=hidden, steps=steps)
    t_train = time.perf_counter() - t0
    target_acc = accuracy(target, ds.test_x, ds.test_y)
    dist = widened_uniform(target)
    tickets: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for objective in OBJECTIVES:
        t1 = time.perf_counter()
        tk = pensia.construct(target, per_weight_eps=per_weight_eps, samples=samples, seed=seed,
                              distribution=dist, objective=objective, strict=False)
        t2 = time.perf_counter()
        rep = verify_report(tk, radius=1.0, count=count, restarts=restarts, steps=attack_steps, seed=seed)
        rep["ticket_accuracy"] = accuracy(tk.to_module(torch.float64), ds.test_x, ds.test_y)
        rep["weights_above_eps"] = tk.provenance["weights_above_eps"]
        rep["weights"] = sum(li["errors"]["count"] for li in tk.provenance["layers"])
        rep["mean_subset_size"] = float(np.mean([li["mean_subset_size"] for li in tk.provenance["layers"]]))
        rep["seconds"] = {"construct": round(t2 - t1, 3), "verify": round(time.perf_counter() - t2, 3)}
        tickets[objective], results[objective] = tk, rep
    main = tickets["min_error"]
    errors = {f"{k} ticket": np.concatenate([np.maximum(tk.arrays[f"errors.block{i}.pos"].numpy(),
                                                        tk.arrays[f"errors.block{i}.neg"].numpy()).reshape(-1)
                                             for i in range(len(tk.provenance["layers"]))])
              for k, tk in tickets.items()}
    x = ds.test_x.double()
    with torch.no_grad():
        target_logits = target.double()(x).numpy()
        ticket_logits = {f"{k} ticket": tk.to_module(torch.float64)(x).numpy() for k, tk in tickets.items()}
    out.mkdir(parents=True, exist_ok=True)
    plot = out / "demo.png"
    plot_demo(plot, errors, per_weight_eps, target_logits, ticket_logits,
              f"digits MLP 64-{hidden}-10 -> pruned random 2L net (n = {samples}, block size "
              f"{main.provenance['block_size']}, seed {seed})")
    main.save(out / "ticket", overwrite=True, what="--out ticket directory")
    cnn = run_cnn_part(ds, channels=cnn_channels, steps=steps, per_weight_eps=per_weight_eps, samples=samples,
                       count=count, seed=seed)
    deep = run_lplus1_part(ds, hidden=max(hidden // 2, 4), steps=steps, rho=15, eps=per_weight_eps, count=count,
                           seed=seed)
    summary = {
        "target": {"architecture": f"64-{hidden}-10, ReLU, no bias", "test_accuracy": target_acc,
                   "weights": int(sum(p.numel() for p in target.parameters())), "train_seconds": round(t_train, 3)},
        "random_network": {"distribution": dist.to_dict(), "samples_per_weight": samples,
                           "block_size": main.provenance["block_size"], "widths": main.provenance["random_width"],
                           "params": main.num_params},
        "per_weight_eps": per_weight_eps, "seed": seed, "tickets": results, "cnn": cnn, "lplus1": deep,
        "plot": str(plot), "ticket": str(out / "ticket"),
    }
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


__all__ = ["OBJECTIVES", "check_demo_output", "digits_cnn", "digits_mlp", "run_cnn_part", "run_demo", "run_lplus1_part",
           "train_digits_target"]
