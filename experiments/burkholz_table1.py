"""Burkholz (2022), Table 1 form: depth-(L+1) tickets of LeNet-300-100 MNIST targets, per activation.

R. Burkholz, "Most Activation Functions Can Win the Lottery Without Excessive Depth", NeurIPS 2022: LeNet
[784, 300, 100, 10] targets on MNIST, rho = 15, eps = 0.01, 5 independent random networks; test accuracy with a
95 % confidence interval beside the target's, random-network and ticket parameters in thousands. Here with
:func:`strongticket.construct.lplus1.construct` (every layer constructed, the first layer by the +- split for
ReLU/LeakyReLU and by the small-weight linear regime for tanh, sigmoid and GELU), for each activation in
``--acts``. Every random weight is drawn from U[-``--scale``, ``--scale``] (default U[-1, 1]); for the
linear regime the construction multiplies the copying layer by lambda_1 and random layer 2 by
``1 / (lambda_1 phi'(0))`` (per-tensor scales recorded in the ticket; ``--first-scale``, default the
construction's ``lambda_1 = eps phi'(0) / (c b^3 R^2)``, see ``docs/constructions.md``):

* the target: trained by the library's one training loop (``strongticket.train.loop.fit``: Adam, lr 1e-3,
  batch 128, ``--epochs`` epochs; initial weights and data order from ``--target-seed``), its test accuracy;
* per random network (seeds ``0 .. --seeds - 1``): construction seconds, instances above eps, the ticket's
  test accuracy (float32, sparse kept weights), the largest output error against the target on
  ``--error-images`` test images (float64), the certified l_inf bound over ``0 <= x <= 1``, parameters;
* accuracy mean and 95 % interval (``1.96 std / sqrt(seeds)``, the paper's convention) over the seeds.

``--first-layer both`` also builds, on the same target and the same random networks (same seeds), the ticket
with the reference code's first-layer choices (``reference_first_layer=True``: no ``1/(1+alpha)`` rescale for
LeakyReLU, no linearisation for tanh/sigmoid/GELU, see ``docs/constructions.md``) and records its accuracy,
errors and the per-seed accuracy difference ours minus reference (mean and 95 % interval); ``reference``
builds only that ticket.

Usage: ``python experiments/burkholz_table1.py --data-dir DATA [--acts relu,tanh] [--seeds 5]
[--hidden 300,100] [--first-layer ours|reference|both] [--out experiments/results/burkholz_table1.json]``
(``DATA`` holds ``mnist/``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import numpy as np
import torch
from torch import nn

from strongticket.construct import lplus1
from strongticket.files import write_json_atomic
from strongticket.nets.activations import activation
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import Linear
from strongticket.ticket import Ticket
from strongticket.train.config import OptimConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import Trainer
from strongticket.train.masking import MaskedModel
from strongticket.verify.accuracy import accuracy
from targets import train_adam


def lenet(widths: list[int], act: str, seed: int) -> nn.Sequential:
    """Flatten, then Linear layers of ``widths`` with ``act`` between them; PyTorch's default law, seeded."""
    gen = torch.Generator().manual_seed(seed)
    mods: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        lin = nn.Linear(a, b)
        bound = 1 / math.sqrt(a)  # nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from our generator
        with torch.no_grad():
            lin.weight.copy_((torch.rand(b, a, generator=gen) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(b, generator=gen) * 2 - 1) * bound)
        mods.append(lin)
        if i < len(widths) - 2:
            mods.append(activation(act).module())
    return nn.Sequential(*mods)


class SparseTicket(nn.Module):
    """A ticket evaluated with CSR kept weights (the dense random layers are too large to multiply)."""

    def __init__(self, ticket: Ticket, dtype: torch.dtype) -> None:
        super().__init__()
        weights = ticket.random_weights()
        self.layers = []
        for i, layer in enumerate(ticket.spec.layers):
            if isinstance(layer, Linear):
                name = f"layers.{i}.weight"
                w = torch.where(ticket.masks[name], weights[name], 0.0).to(dtype)
                self.layers.append((w.to_sparse_csr(), activation(layer.activation).fn))
        self.dummy = nn.Parameter(torch.zeros(1, dtype=dtype), requires_grad=False)  # dtype for accuracy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1).T.contiguous()
        for w, act in self.layers:
            x = act(torch.sparse.mm(w, x))
        return x.T


def magnitude_prune(model: nn.Module, ds, density: float, rounds: int, epochs: int, seed: int,
                    log) -> nn.Module:
    """Iterative magnitude pruning to ``density`` (layerwise, weights only) in ``rounds`` rounds, each followed by
    ``epochs`` epochs of masked Adam training (no rewinding); the pruned weights end exactly zero."""
    names = [n for n, p in model.named_parameters() if n.endswith("weight")]
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters() if n in names}
    for r in range(1, rounds + 1):
        keep = density ** (r / rounds)
        params = dict(model.named_parameters())
        for n in names:
            k = max(1, round(keep * params[n].numel()))
            thresh = params[n].detach().abs().where(masks[n], torch.tensor(-1.0)).flatten().kthvalue(
                params[n].numel() - k + 1).values
            masks[n] = params[n].detach().abs() >= thresh
        wrapped = MaskedModel(model, masks)
        Trainer(wrapped, ds, OptimConfig(optimizer="adam", lr=1e-3, epochs=epochs), list(model.parameters()),
                seed=seed + r, batch_size=128).run()
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in masks:
                    p.mul_(masks[n])
        log(f"prune round {r}: density {keep:.3f}, test accuracy {accuracy(model.eval(), ds.test_x, ds.test_y):.4f}")
    return model.eval()


def ci95(values: list[float]) -> list[float]:
    """Mean and half-width ``1.96 std / sqrt(n)`` (sample std; 0 for one value)."""
    a = np.asarray(values, dtype=np.float64)
    half = 1.96 * a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else 0.0
    return [float(a.mean()), float(half)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("STRONGTICKET_DATA"))
    ap.add_argument("--out", default="experiments/results/burkholz_table1.json")
    ap.add_argument("--acts", default="relu,leaky_relu,tanh,sigmoid,gelu")
    ap.add_argument("--hidden", default="300,100", help="hidden widths of the target")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--target-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1, help="independent random networks per target (paper: 5)")
    ap.add_argument("--rho", type=int, default=15)
    ap.add_argument("--eps", type=float, default=0.01)
    ap.add_argument("--objective", default="sparsest")
    ap.add_argument("--scale", type=float, default=1.0, help="every random weight's law is U[-scale, scale]")
    ap.add_argument("--first-scale", default="theory",
                    help="lambda_1 of the copying layer for linear-regime activations (random layer 2 gets "
                         "1 / (lambda_1 phi'(0))): 'theory' (eps phi'(0) / (c b^3 R^2)), a number, or 'none' for "
                         "one law in every layer (no per-tensor scale: the behaviour before scales existed)")
    ap.add_argument("--first-rho", type=int, default=None,
                    help="copying-layer neurons per input (default: the construction's, 2 rho for ReLU-like, rho else)")
    ap.add_argument("--const-rho", type=int, default=None,
                    help="neurons per group of the constant block (default: the construction's, first_rho; "
                         "activations with phi(0) != 0 get reserve groups, lplus1.constant_groups)")
    ap.add_argument("--error-images", type=int, default=500)
    ap.add_argument("--first-layer", choices=("ours", "reference", "both"), default="ours",
                    help="ours; the reference code's first-layer choices; or both on the same random networks")
    ap.add_argument("--density", type=float, default=1.0,
                    help="IMP-style target: layerwise magnitude pruning to this weight density (1: dense)")
    ap.add_argument("--prune-rounds", type=int, default=3, help="pruning rounds, each retrained --epochs epochs")
    args = ap.parse_args()
    if args.first_scale == "none":
        first_scale = None
    elif args.first_scale == "theory":
        first_scale = "theory"
    else:
        try:
            first_scale = float(args.first_scale)
        except ValueError:
            ap.error(f"--first-scale must be 'theory', 'none' or a number > 0, got {args.first_scale!r}")
        if not (math.isfinite(first_scale) and first_scale > 0):
            ap.error(f"--first-scale must be 'theory', 'none' or a number > 0, got {args.first_scale!r}")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    ds = load_dataset("mnist", data_dir=args.data_dir)
    widths = [784] + [int(h) for h in args.hidden.split(",")] + [10]
    result: dict = {
        "experiment": "Burkholz 2022 Table 1 form: LeNet MNIST targets, depth-(L+1) tickets",
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "torch": torch.__version__},
        "settings": {"widths": widths, "rho": args.rho, "eps": args.eps, "objective": args.objective,
                     "seeds": args.seeds, "epochs": args.epochs, "target_seed": args.target_seed,
                     "scale": args.scale, "first_scale": args.first_scale, "first_rho": args.first_rho,
                     "const_rho": args.const_rho, "error_images": args.error_images,
                     "density": args.density, "first_layer": args.first_layer,
                     "prune_rounds": args.prune_rounds if args.density < 1 else 0},
        "rows": {},
    }
    xs = ds.test_x[:args.error_images].double()
    for act in args.acts.split(","):
        target = train_adam(lenet(widths, act, args.target_seed), ds, epochs=args.epochs, seed=args.target_seed,
                            log=log, label=f"{act} target: ")
        if args.density < 1:
            target = magnitude_prune(target, ds, args.density, args.prune_rounds, args.epochs, args.target_seed, log)
        target_acc = accuracy(target, ds.test_x, ds.test_y)
        f64 = lenet(widths, act, 0).double()
        f64.load_state_dict({k: v.double() for k, v in target.state_dict().items()})
        mode = lplus1.first_layer_mode(activation(act))
        dist = WeightDistribution.uniform(-args.scale, args.scale)
        const_rho = args.const_rho
        runs = []
        variants = {"ours": [False], "reference": [True], "both": [False, True]}[args.first_layer]
        for seed in range(args.seeds):
            run: dict = {}
            for reference in variants:
                log(f"{act}: constructing seed {seed}{' (reference first layer)' if reference else ''} ...")
                t0, c0 = time.perf_counter(), time.process_time()
                ticket = lplus1.construct(target, eps=args.eps, rho=args.rho, seed=seed, distribution=dist,
                                          objective=args.objective, nonneg_input=True, const_rho=const_rho,
                                          first_rho=args.first_rho, first_scale=first_scale, log=log,
                                          reference_first_layer=reference)
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                g32 = SparseTicket(ticket, torch.float32)
                acc = accuracy(g32, ds.test_x, ds.test_y)
                del g32
                g64 = SparseTicket(ticket, torch.float64)
                with torch.no_grad():
                    measured = float((g64(xs) - f64(xs)).abs().max())
                del g64
                prov = ticket.provenance
                rec = {
                    "seed": seed, "construction_seconds": round(seconds, 1), "construction_cpu_seconds": round(cpu, 1),
                    "test_accuracy": acc,
                    "measured_linf_error": measured, "certified_linf_bound": prov["certified_bound"]["bound"],
                    "certified_layers": prov["certified_bound"]["layers"],
                    "instances_above_eps": prov["instances_above_eps"],
                    "random_params": ticket.num_params, "ticket_params": ticket.num_kept,
                    "layers": prov["layers"], "seconds": prov["seconds"],
                }
                log(f"{act} seed {seed}{' reference' if reference else ''}: {seconds:.0f} s, accuracy {acc:.4f} "
                    f"(target {target_acc:.4f}), measured {measured:.3g}, bound "
                    f"{prov['certified_bound']['bound']:.3g}, kept {ticket.num_kept} of {ticket.num_params}, "
                    f"{prov['instances_above_eps']} instances above eps")
                if reference and len(variants) == 2:
                    run["reference"] = rec
                else:
                    run.update(rec)
                    main = ticket  # the row's law and layout: the first variant's
            runs.append(run)
        result["rows"][act] = {
            "first_layer_mode": mode, "distribution": main.distribution.to_dict(),
            "const_rho": main.provenance["lplus1"]["const_rho"],
            "const_groups": main.provenance["lplus1"]["const_groups"],
            "first_scale": main.provenance["lplus1"]["first_scale"],
            "target_accuracy": target_acc,
            "target_params_k": sum(p.numel() for p in target.parameters()) / 1e3,
            "target_nonzero_params_k": sum(int((p != 0).sum()) for p in target.parameters()) / 1e3,
            "ticket_accuracy_ci95": ci95([r["test_accuracy"] for r in runs]),
            "random_params_k": runs[0]["random_params"] / 1e3,
            "ticket_params_k_ci95": ci95([r["ticket_params"] / 1e3 for r in runs]),
            "max_construction_seconds": max(r["construction_seconds"] for r in runs),
            "runs": runs,
        }
        if args.first_layer == "both":
            result["rows"][act]["reference_accuracy_ci95"] = ci95([r["reference"]["test_accuracy"] for r in runs])
            result["rows"][act]["ours_minus_reference_ci95"] = ci95(
                [r["test_accuracy"] - r["reference"]["test_accuracy"] for r in runs])
            result["rows"][act]["reference_measured_linf_error"] = [r["reference"]["measured_linf_error"] for r in runs]
            result["rows"][act]["measured_linf_error"] = [r["measured_linf_error"] for r in runs]
        write_json_atomic(args.out, result)
    log(f"wrote {args.out}")
    print(json.dumps({a: {k: v for k, v in r.items() if k != "runs"} for a, r in result["rows"].items()}, indent=1))


if __name__ == "__main__":
    main()
