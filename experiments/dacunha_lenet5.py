"""da Cunha, Natale, Viennot (ICLR 2022): LeNet-5 (or Conv-2) on MNIST and Fashion-MNIST, every layer from a random CNN.

Their experiment: LeNet-5 with ReLU trained to 98.99 % (MNIST) and 89.12 % (Fashion-MNIST); a random CNN
about 30x larger; a mask found "in few hours" approximating the convolutional layers to relative error 1e-3.
Here: the Caffe LeNet-5 of the zoo (conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10) trained with the
library's loop (:func:`strongticket.train.loop.fit`, Adam), then :func:`strongticket.construct.cnn2l.construct`
for the **whole** target (both convolutions and both Linear layers, none copied), random weights U[-1, 1],
n samples per weight (21 by default), objective ``min_error``, per-weight tolerance ``eps' = rel * rms(K)``
for each conv layer, so that a conv layer within eps' per entry has ``|K^ - K|_F / |K|_F <= rel`` (1e-3 by
default), and ``--fc-eps`` (1e-3) for the Linear layers. Pixels are in [0, 1] and every later layer reads a ReLU
output, so only the ``relu(x)`` side of each pair is built (``nonneg_input``).

Reported per layer: relative error ``|K^ - K|_F / |K|_F`` (recomputed from the regenerated random weights
and the masks), max per-entry error, seconds (drawing, building + solving), peak RSS at the layer's end; overall: random / target size
(all random parameters, and counting each univariate first layer by its diagonal only), density, target and
ticket test accuracy, construction time, peak RSS. The ticket's accuracy is computed with its pruned
intermediate channels removed (the removed entries are exactly zero; the script checks the compact network
against ``Ticket.to_module`` on ``--check-images`` test images and reports the largest difference).

``--model conv2``: the zoo's Conv-2 (conv 64@3x3, conv 64@3x3, pool, fc 256, fc 256, fc 10; Frankle & Carbin
2019) instead. Its first Linear reads a flattened 64 x 14 x 14 map; cnn2l realises it by a random 1x1 conv before
the Flatten and a random Linear after it (``strongticket.construct.flatten_linear``), and the script also reports
the size a fully connected block would have had there (``random_params_dense_flatten``, by formula).

Biases: carried by a constant input channel (``--bias yes``, the default) or absent (``--bias no``).

Usage: ``python experiments/dacunha_lenet5.py --data-dir DATA [--model lenet5|conv2]
[--datasets mnist,fashion-mnist] [--train-subset N --epochs E]  [--out experiments/results/dacunha_lenet5.json]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from strongticket.construct import cnn2l
from strongticket.files import save_tensors_atomic, write_json_atomic
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import Conv2d, Flatten, Linear, Pool
from strongticket.nets.zoo import build_model
from strongticket.train.config import OptimConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import fit
from strongticket.verify.accuracy import accuracy

PAPER = {"mnist": 0.9899, "fashion-mnist": 0.8912}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compact_forward(ticket, weights):
    """The ticket as a function with its unused intermediate channels removed (same function, less work)."""
    layers = ticket.spec.layers
    params = {}
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, (Conv2d, Linear)):  # a pair: (i, i + 1), or (i, i + 2) around a Flatten
            step = 3 if isinstance(layers[i + 1], Flatten) else 2
            n1, n2 = f"layers.{i}.weight", f"layers.{i + step - 1}.weight"
            w1 = weights[n1] * ticket.masks[n1]
            m = w1.shape[0]
            w2 = weights[n2] * ticket.masks[n2]
            if step == 3:  # Linear over the flattened (m, S) map: view it as (d_out, m, S)
                w2 = w2.reshape(w2.shape[0], m, -1)
            keep = ticket.masks[n1].reshape(m, -1).any(dim=1) & (w2 != 0).transpose(0, 1).reshape(m, -1).any(dim=1)
            # each kept intermediate channel reads one input (univariate): a gather and a scale, not a matmul
            cols = ticket.masks[n1].reshape(m, -1)[keep].to(torch.int8).argmax(dim=1)
            vals = w1.reshape(m, -1)[keep].gather(1, cols[:, None])[:, 0]
            w2 = w2[:, keep]
            params[i] = (cols, vals, w2.reshape(w2.shape[0], -1) if step == 3 else w2, step)
            i += step
        else:
            i += 1

    def forward(x: torch.Tensor) -> torch.Tensor:
        if ticket.spec.input_constant:
            x = torch.cat([x.flatten(1), torch.ones_like(x.flatten(1)[:, :1])], dim=1)
        if getattr(ticket.spec, "input_constant_channel", False):
            x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        j = 0
        while j < len(layers):
            layer = layers[j]
            if j in params:
                cols, vals, w2, step = params[j]
                second = layers[j + step - 1]
                if step == 3:  # 1x1 conv, Flatten, Linear
                    h = F.relu(x[:, cols] * vals[None, :, None, None]).flatten(1)
                    h = F.relu(h) if layers[j + 1].activation == "relu" else h
                    x = F.linear(h, w2)
                elif isinstance(layer, Conv2d):
                    h = F.relu(x[:, cols] * vals[None, :, None, None])
                    x = F.conv2d(h, w2, stride=second.stride, padding=second.padding)
                else:
                    x = F.linear(F.relu(x[:, cols] * vals[None]), w2)
                x = F.relu(x) if second.activation == "relu" else x
                j += step
                continue
            if isinstance(layer, Pool):
                x = (F.max_pool2d if layer.mode == "max" else F.avg_pool2d)(x, layer.kernel_size, layer.stride)
            elif isinstance(layer, Flatten):
                x = x.flatten(1)
            x = F.relu(x) if layer.activation == "relu" else x
            j += 1
        return x

    return forward


@torch.no_grad()
def batched_accuracy(fn, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    correct = 0
    for s in range(0, len(y), batch):
        correct += int((fn(x[s:s + batch]).argmax(1) == y[s:s + batch]).sum())
    return correct / len(y)


def run_dataset(name: str, args, log) -> dict:
    ds = load_dataset(name, data_dir=args.data_dir)
    if args.train_subset:
        g = torch.Generator().manual_seed(args.seed)
        idx = torch.randperm(len(ds.train_y), generator=g)[:args.train_subset]
        ds = dataclasses.replace(ds, train_x=ds.train_x[idx], train_y=ds.train_y[idx])
    if args.test_subset:  # the first N test images, for target and ticket alike (a reduced run)
        ds = dataclasses.replace(ds, test_x=ds.test_x[:args.test_subset], test_y=ds.test_y[:args.test_subset])
    bias = args.bias == "yes"
    target = build_model(args.model, num_classes=10, in_channels=1, image_size=28, width=args.width, bias=bias,
                         seed=args.seed)
    cache = Path(args.target_dir) / (f"{args.model}_{name}_w{args.width:g}_b{int(bias)}_e{args.epochs}"
                                     f"_n{args.train_subset or 'all'}_s{args.seed}.safetensors")
    t0 = time.perf_counter()
    if cache.is_file():
        from safetensors.torch import load_file

        target.load_state_dict(load_file(str(cache)))
        log(f"{name}: loaded target {cache}")
    else:
        fit(target, ds, OptimConfig(optimizer="adam", lr=1e-3, epochs=args.epochs), batch_size=128, seed=args.seed)
        save_tensors_atomic(cache, {k: v.contiguous() for k, v in target.state_dict().items()})
    target.eval()
    train_seconds = time.perf_counter() - t0
    target_acc = accuracy(target, ds.test_x, ds.test_y)
    # per layer: conv layers rel * rms(K) (then |K^ - K|_F <= rel |K|_F when every entry is within it), Linear
    # layers --fc-eps (the relative-error aim is for the convolutions; a looser eps' spares wider-pool retries)
    eps = [args.rel * float(m.weight.detach().double().norm() / m.weight.numel() ** 0.5)
           if isinstance(m, torch.nn.Conv2d) else args.fc_eps
           for m in target.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    if args.per_weight_eps:
        eps = [args.per_weight_eps] * len(eps)
    log(f"{name}: target test accuracy {target_acc:.4f} ({train_seconds:.0f} s); per-weight eps by layer "
        f"{[float(f'{e:.3g}') for e in eps]}")

    done_rss: list[float] = []

    def mark(msg: str) -> None:
        if " done: " in msg:  # cnn2l logs one line when a layer is finished: the peak RSS so far
            done_rss.append(peak_rss_mb())
        log(f"  {msg}")

    rss0 = peak_rss_mb()
    cpu1 = time.process_time()
    t1 = time.perf_counter()
    ticket = cnn2l.construct(target, per_weight_eps=eps, samples=args.samples, input_shape=(1, 28, 28),
                             nonneg_input=True, seed=args.seed, distribution=WeightDistribution.uniform(-1, 1),
                             objective=args.objective, strict=False, log=mark)
    seconds = time.perf_counter() - t1
    cpu_seconds = time.process_time() - cpu1
    rss_construct = peak_rss_mb()
    log(f"{name}: constructed in {seconds:.1f} s ({cpu_seconds:.1f} s CPU), peak RSS {rss_construct:.0f} MB")

    weights = ticket.random_weights()
    kernels = cnn2l.pair_kernels(ticket, target, weights=weights)
    layers = []
    for li, (row, k) in enumerate(zip(ticket.provenance["layers"], kernels)):
        sl = tuple(slice(0, s) for s in k["weight_shape"])
        w = k["kernel"][sl]
        rel = float(np.linalg.norm(k["pos"][sl] - w) / np.linalg.norm(w))
        layers.append({"kind": row["kind"], "target_shape": row["target_shape"],
                       "random_shapes": row["random_shapes"], "relative_error": rel,
                       "max_entry_error": float(np.abs(k["pos"] - k["kernel"]).max()),
                       "instances": row["instances"], "mean_subset_size": row["mean_subset_size"],
                       "per_weight_eps": row["per_weight_eps"], "weights_above_eps": row["errors"]["above_eps"],
                       "status": row["status"], "wider_pool": row["wider_pool"],
                       "seconds": row["seconds"],  # drawing the random weights, and building + solving
                       "peak_rss_mb": round(done_rss[li], 1)})
        log(f"  layer {li + 1} {row['kind']} {row['target_shape']}: relative error {rel:.2e}, "
            f"{sum(row['seconds'].values()):.1f} s, peak RSS {layers[-1]['peak_rss_mb']:.0f} MB")
    fn = compact_forward(ticket, weights)
    t2 = time.perf_counter()
    ticket_acc = batched_accuracy(fn, ds.test_x, ds.test_y)
    eval_seconds = time.perf_counter() - t2
    xs = ds.test_x[:args.check_images]
    with torch.no_grad():
        full = ticket.to_module(torch.float32, weights=weights)
        check = float((full(xs) - fn(xs)).abs().max())
        del full
        gap = float((fn(xs) - target(xs)).abs().max())
    n_random = ticket.num_params
    firsts = [row["random_layers"][0] for row in ticket.provenance["layers"]]  # univariate: only a diagonal
    effective = n_random - sum(ticket.masks[n].numel() for n in firsts) + sum(ticket.masks[n].shape[0] for n in firsts)
    n_target = sum(p.numel() for p in target.parameters())
    out = {
        "dataset": name, "model": args.model, "bias": bias, "train_subset": args.train_subset or len(ds.train_y),
        "test_images": int(len(ds.test_y)), "epochs": args.epochs,
        "target": {"test_accuracy": target_acc, "paper_accuracy": PAPER[name], "params": n_target,
                   "train_seconds": round(train_seconds, 1)},
        "per_weight_eps": eps, "samples_per_weight": ticket.provenance["samples_per_weight"],
        "block_size": ticket.provenance["block_size"],
        "layers": layers,
        "conv_relative_error_max": max(r["relative_error"] for r in layers if r["kind"] == "conv2d"),
        "random_params": n_random, "random_params_univariate_first_layers": effective,
        "random_params_dense_flatten": ticket.provenance["random_params_dense_flatten"],
        "size_ratio": n_random / n_target, "size_ratio_univariate": effective / n_target,
        "kept": ticket.num_kept, "density": ticket.density, "kept_over_target": ticket.num_kept / n_target,
        "ticket_test_accuracy": ticket_acc, "accuracy_difference_points": round(100 * (ticket_acc - target_acc), 3),
        "max_logit_difference_ticket_vs_target": gap,
        "compact_vs_to_module_max_difference": check, "check_images": int(len(xs)),
        "construction_seconds": round(seconds, 1), "construction_cpu_seconds": round(cpu_seconds, 1),
        "evaluation_seconds": round(eval_seconds, 1),
        "peak_rss_mb": {"before": round(rss0, 1), "after_construction": round(rss_construct, 1),
                        "end": round(peak_rss_mb(), 1)},
        "certified_linf_bound_unit_ball": ticket.provenance["certified_linf"]["bound"],
    }
    log(f"{name}: ticket accuracy {ticket_acc:.4f} vs target {target_acc:.4f}; conv relative error max "
        f"{out['conv_relative_error_max']:.2e}; random/target {out['size_ratio']:.0f}x "
        f"({out['size_ratio_univariate']:.1f}x with diagonal first layers); density {ticket.density:.2e}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("STRONGTICKET_DATA"))
    ap.add_argument("--model", default="lenet5", choices=("lenet5", "conv2"))
    ap.add_argument("--datasets", default="mnist,fashion-mnist")
    ap.add_argument("--out", default="experiments/results/dacunha_lenet5.json")
    ap.add_argument("--target-dir", default="experiments/results", help="where trained targets are cached")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-subset", type=int, default=0, help="train on N random examples (reduced run)")
    ap.add_argument("--test-subset", type=int, default=0, help="test on the first N test images (reduced run)")
    ap.add_argument("--width", type=float, default=1.0, help="width factor (1: LeNet-5 20/50/500, Conv-2 64/256)")
    ap.add_argument("--samples", type=int, default=21)
    ap.add_argument("--rel", type=float, default=1e-3, help="relative kernel error aimed at for conv layers")
    ap.add_argument("--fc-eps", type=float, default=1e-3, help="per-weight eps' of the Linear layers")
    ap.add_argument("--per-weight-eps", type=float, default=None, help="one eps' for every layer (overrides)")
    ap.add_argument("--objective", default="min_error", choices=("min_error", "sparsest"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bias", default="yes", choices=("yes", "no"))
    ap.add_argument("--check-images", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    result = {
        "experiment": f"da Cunha, Natale, Viennot 2022: {args.model}, every layer pruned from a random CNN (cnn2l)",
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform()},
        "paper": {"target_accuracy": PAPER, "conv_relative_error": 1e-3, "random_over_target": "about 30x",
                  "time": "a few hours"},
        "settings": {k: v for k, v in vars(args).items() if k not in ("data_dir",)},
        "runs": [run_dataset(name, args, log) for name in args.datasets.split(",")],
    }
    write_json_atomic(Path(args.out), result)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
