"""Width scaling table: smallest samples per weight reaching eps' (bisection, 3 seeds) for Pensia's subset sum
and Malach's find-one baseline, beside the theorem's n, on a small random target and on LeNet-300-100.

Samples per weight ``n`` = candidates of every subset-sum instance; the random network's block size (hidden
neurons per input) follows from n (``blocks.block_size_for``) and is in the JSON. The theorem column is
``pensia.theory_samples`` at the calibrated constant ``pensia.PENSIA_C`` (``theory.pensia_C1``: C = 1); the
JSON also carries Lueker's bound, the counting lower bound and the find-one pool size of the theory module.

LeNet-300-100 (784-300-100-10, no bias) is trained here on MNIST in a few lines (Adam, 2 epochs) unless
``--lenet-checkpoint`` exists; its inputs are pixels >= 0, so its tickets have no relu(-x) side in block 1.
The find-one baseline on LeNet is run only up to ``--lenet-malach-max`` (its pool grows like 1/eps').

Every instance uses exactly its first n candidates here (``wider_pool=False``): the construction's retry over
the whole block would otherwise hide the misses this table measures.

Usage: ``python experiments/width_scaling.py [--data-dir DATA] [--out experiments/results/width_scaling.json]``
(``DATA`` holds ``mnist/``; default ``$STRONGTICKET_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from strongticket.files import write_json_atomic
from strongticket.verify.scaling import plot_scaling, scaling_table


def small_random_target(seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(16, 16, bias=False), torch.nn.ReLU(), torch.nn.Linear(16, 4, bias=False))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * 0.5)
    return m.eval()


def lenet_target(checkpoint: str, data_dir: str, epochs: int, log) -> torch.nn.Module:
    """LeNet-300-100 without biases: loaded from ``checkpoint`` or trained on MNIST (Adam 1e-3, batch 128)."""
    from strongticket.nets.zoo import build_model

    m = build_model("lenet300100", num_classes=10, in_channels=1, image_size=28, width=1.0, bias=False, seed=0)
    if Path(checkpoint).is_file():
        from safetensors.torch import load_file

        m.load_state_dict(load_file(checkpoint))
        return m.eval()
    from strongticket.files import save_tensors_atomic
    from strongticket.train.data import load_dataset
    from targets import train_adam

    ds = load_dataset("mnist", data_dir=data_dir)
    m = train_adam(m, ds, epochs=epochs, seed=0, log=log, label="lenet ")
    save_tensors_atomic(checkpoint, {k: v.contiguous() for k, v in m.state_dict().items()})
    return m.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/results/width_scaling.json")
    ap.add_argument("--lenet-checkpoint", default="experiments/results/lenet300100_target.safetensors",
                    help="trained LeNet-300-100 (no bias); trained and written here when missing")
    ap.add_argument("--data-dir", default=os.environ.get("STRONGTICKET_DATA"))
    ap.add_argument("--lenet-epochs", type=int, default=2)
    ap.add_argument("--eps", default="0.1,0.05,0.02,0.01")
    ap.add_argument("--lenet-eps", default="0.1,0.01")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lenet-seeds", type=int, default=1)
    ap.add_argument("--lenet-malach-max", type=int, default=0, help="find-one n_max on LeNet (0: skip it)")
    ap.add_argument("--skip-small", action="store_true", help="reuse the small target's rows from --out")
    ap.add_argument("--skip-lenet", action="store_true")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    out: dict = {}
    if args.skip_small and Path(args.out).is_file():
        out = json.loads(Path(args.out).read_text())
    else:
        t0 = time.perf_counter()
        out["small_random_16_16_4"] = scaling_table(small_random_target(), [float(e) for e in args.eps.split(",")],
                                                    seeds=tuple(range(args.seeds)),
                                                    construct_kwargs={"wider_pool": False}, log=log)
        out["small_random_16_16_4_seconds"] = round(time.perf_counter() - t0, 1)
        plot_scaling(out["small_random_16_16_4"], Path(args.out).with_suffix(".png"), "random target 16-16-4")
        write_json_atomic(args.out, out)
    if args.skip_lenet:
        return
    lenet = lenet_target(args.lenet_checkpoint, args.data_dir, args.lenet_epochs, log)
    t0 = time.perf_counter()
    out["lenet300100"] = scaling_table(lenet, [float(e) for e in args.lenet_eps.split(",")],
                                       seeds=tuple(range(args.lenet_seeds)), n_max_malach=args.lenet_malach_max,
                                       skip_malach=not args.lenet_malach_max,
                                       construct_kwargs={"nonneg_input": True, "wider_pool": False}, log=log)
    out["lenet300100_seconds"] = round(time.perf_counter() - t0, 1)
    plot_scaling(out["lenet300100"], Path(args.out).with_name(Path(args.out).stem + "_lenet.png"),
                 "LeNet-300-100 (MNIST)")
    write_json_atomic(args.out, out)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
