"""Width scaling table: smallest samples per weight reaching eps' (bisection, 3 seeds) for Pensia's subset sum
and Malach's find-one baseline, beside the theorem's n, on a small random target and on LeNet-300-100.

Usage: ``python experiments/width_scaling.py [--lenet-checkpoint PATH] [--out experiments/results/width_scaling.json]``
"""

from __future__ import annotations

import argparse
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


def lenet_target(checkpoint: str | None) -> torch.nn.Module:
    from strongticket.nets.zoo import build_model

    m = build_model("lenet300100", num_classes=10, in_channels=1, image_size=28, width=1.0, bias=False)
    if checkpoint:
        from safetensors.torch import load_file

        m.load_state_dict(load_file(checkpoint))
    return m.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/results/width_scaling.json")
    ap.add_argument("--lenet-checkpoint", default=None)
    ap.add_argument("--eps", default="0.1,0.05,0.02,0.01")
    ap.add_argument("--lenet-eps", default="0.01")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip-lenet", action="store_true")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    seeds = tuple(range(args.seeds))
    out = {"small_random_16_16_4": scaling_table(small_random_target(), [float(e) for e in args.eps.split(",")],
                                                 seeds=seeds, log=log)}
    plot_scaling(out["small_random_16_16_4"], Path(args.out).with_suffix(".png"), "random target 16-16-4")
    write_json_atomic(args.out, out)
    if args.skip_lenet:
        return
    lenet = lenet_target(args.lenet_checkpoint)
    out["lenet300100"] = scaling_table(lenet, [float(e) for e in args.lenet_eps.split(",")], seeds=seeds[:1],
                                       n_max_malach=16, log=log)
    write_json_atomic(args.out, out)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
