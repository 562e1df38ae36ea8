"""Burkholz (2022), Table 1 form for a CNN target: depth-(L+1) tickets of a LeNet-5 trained briefly on MNIST.

R. Burkholz, "Most Activation Functions Can Win the Lottery Without Excessive Depth", NeurIPS 2022, and the
convolutional case of Burkholz, ICML 2022: rho = 15, eps = 0.01, several independent random networks; test
accuracy (mean and 95 % interval, ``1.96 std / sqrt(seeds)``) beside the target's, random-network and ticket
parameters, construction time. Every layer is constructed, the classifier included (the reference code
copies its classifier from the target). The CNN construction is
:func:`strongticket.construct.lplus1.construct` on a convolutional target
(:mod:`strongticket.construct.lplus1_conv`).

* target: the zoo's ``lenet5`` with biases (``--width`` scales its channels), activation ``--act`` in place of
  its ReLUs, trained ``--epochs`` epochs with Adam (``experiments/targets.py``), and with ``--density < 1``
  magnitude-pruned layerwise to that density in ``--prune-rounds`` retrained rounds (IMP-style, as in
  ``burkholz_table1.py``); its test accuracy;
* per random network (seeds ``0 .. --seeds - 1``): construction wall and CPU seconds, instances above eps,
  test accuracy of the ticket (float32) on the first ``--test-images`` test images (the target's on the same
  images beside it), the largest output error against the target on ``--error-images`` images (float64),
  the certified l_inf bound over ``0 <= x <= 1``, parameters.

Usage: ``python experiments/lplus1_cnn.py --data-dir DATA [--seeds 3] [--act relu] [--reference-first-layer]
[--out experiments/results/lplus1_cnn_lenet5.json]``.
"""

from __future__ import annotations

import argparse
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
from strongticket.nets.zoo import build_model
from strongticket.train.data import load_dataset
from strongticket.verify.accuracy import accuracy
from burkholz_table1 import magnitude_prune
from targets import train_adam


def with_activation(model: nn.Sequential, act: str) -> nn.Sequential:
    """``model`` with every ReLU module replaced by the registry's ``act`` module."""
    return nn.Sequential(*[activation(act).module() if isinstance(m, nn.ReLU) else m for m in model])


def ci95(values: list[float]) -> list[float]:
    """Mean and half-width ``1.96 std / sqrt(n)`` (sample std; 0 for one value)."""
    a = np.asarray(values, dtype=np.float64)
    return [float(a.mean()), float(1.96 * a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("STRONGTICKET_DATA"))
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--out", default="experiments/results/lplus1_cnn_lenet5.json")
    ap.add_argument("--act", default="relu")
    ap.add_argument("--width", type=float, default=1.0, help="the zoo's channel multiplier for lenet5")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--target-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rho", type=int, default=15)
    ap.add_argument("--eps", type=float, default=0.01)
    ap.add_argument("--objective", default="sparsest")
    ap.add_argument("--reference-first-layer", action="store_true")
    ap.add_argument("--test-images", type=int, default=2000)
    ap.add_argument("--error-images", type=int, default=100)
    ap.add_argument("--density", type=float, default=1.0,
                    help="IMP-style target: layerwise magnitude pruning to this weight density (1: dense)")
    ap.add_argument("--prune-rounds", type=int, default=2, help="pruning rounds, each retrained --epochs epochs")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    shape = tuple(ds.test_x.shape[1:])
    model = with_activation(build_model("lenet5", bias=True, seed=args.target_seed, width=args.width,
                                        in_channels=shape[0], image_size=shape[1]), args.act)
    target = train_adam(model, ds, epochs=args.epochs, seed=args.target_seed, log=log, label="target: ").eval()
    if args.density < 1:
        target = magnitude_prune(target, ds, args.density, args.prune_rounds, args.epochs, args.target_seed, log)
    tx, ty = ds.test_x[:args.test_images], ds.test_y[:args.test_images]
    target_acc_full = accuracy(target, ds.test_x, ds.test_y)
    target_acc = accuracy(target, tx, ty)
    f64 = with_activation(build_model("lenet5", bias=True, seed=0, width=args.width, in_channels=shape[0],
                                      image_size=shape[1]), args.act).double()
    f64.load_state_dict({k: v.double() for k, v in target.state_dict().items()})
    f64.eval()
    xs = ds.test_x[:args.error_images].double()
    runs = []
    for seed in range(args.seeds):
        log(f"constructing seed {seed} ...")
        t0, c0 = time.perf_counter(), time.process_time()
        ticket = lplus1.construct(target, eps=args.eps, rho=args.rho, seed=seed, objective=args.objective,
                                  nonneg_input=True, input_shape=shape,
                                  reference_first_layer=args.reference_first_layer, log=log)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t1 = time.perf_counter()
        g32 = ticket.to_module(torch.float32).eval()
        acc = accuracy(g32, tx, ty)
        del g32
        g64 = ticket.to_module(torch.float64).eval()
        with torch.no_grad():
            measured = float((g64(xs) - f64(xs)).abs().max())
        del g64
        prov = ticket.provenance
        runs.append({"seed": seed, "construction_seconds": round(wall, 1), "construction_cpu_seconds": round(cpu, 1),
                     "evaluation_seconds": round(time.perf_counter() - t1, 1), "test_accuracy": acc,
                     "measured_linf_error": measured, "certified_linf_bound": prov["certified_bound"]["bound"],
                     "certified_layers": prov["certified_bound"]["layers"],
                     "instances_above_eps": prov["instances_above_eps"], "random_params": ticket.num_params,
                     "ticket_params": ticket.num_kept, "layers": prov["layers"], "seconds": prov["seconds"]})
        log(f"seed {seed}: {wall:.0f} s wall, {cpu:.0f} s CPU; accuracy {acc:.4f} (target {target_acc:.4f} on the "
            f"same {len(tx)} images), measured {measured:.3g}, bound {prov['certified_bound']['bound']:.3g}, kept "
            f"{ticket.num_kept} of {ticket.num_params}, {prov['instances_above_eps']} instances above eps")
        result = {
            "experiment": "Burkholz 2022 Table 1 form, CNN target: LeNet-5 depth-(L+1) tickets, every layer built",
            "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "platform": platform.platform(), "torch": torch.__version__},
            "settings": {k: v for k, v in vars(args).items() if k not in ("data_dir", "out")},
            "target": {"spec": ticket.provenance["target"]["spec"], "test_accuracy_full": target_acc_full,
                       "nonzero_params_k": sum(int((p != 0).sum()) for p in target.parameters()) / 1e3,
                       "test_accuracy": target_acc, "params_k": sum(p.numel() for p in target.parameters()) / 1e3},
            "lplus1": {k: v for k, v in prov["lplus1"].items() if k != "first_scale"},
            "ticket_accuracy_ci95": ci95([r["test_accuracy"] for r in runs]),
            "random_params_k": runs[0]["random_params"] / 1e3,
            "ticket_params_k_ci95": ci95([r["ticket_params"] / 1e3 for r in runs]),
            "max_construction_seconds": max(r["construction_seconds"] for r in runs),
            "runs": runs,
        }
        write_json_atomic(args.out, result)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
