"""Essential sparsity of LeNet-300-100 on MNIST (Jaiswal, Liu, Chen, Wang, NeurIPS 2023), and its emergence.

The dense run of ``experiments/lenet300100_mnist_train.toml`` (``--epochs`` epochs) is trained with the library's
one loop while :class:`strongticket.essential.WeightSnapshots` keeps the weights ``--snapshots-per-epoch``
times an epoch; every snapshot is pruned once by global magnitude over the sparsity grid, and by the 2:4 and
4:8 families, without retraining, and its test accuracy measured. Reported: per pattern, the essential sparsity
(the largest swept sparsity with every point within 1 accuracy point of dense) and the knee of the curve, for
the trained model and per snapshot, with the seconds of training and of the sweeps. The same numbers come from
``strongticket essential --config experiments/lenet300100_mnist_train.toml --epochs 4 --data-dir DATA --out DIR``;
this script also records the machine and its load.

Usage: ``python experiments/essential_sparsity.py --data-dir DATA [--epochs 4] [--snapshots-per-epoch 1]
[--out experiments/results/essential_sparsity]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from strongticket.essential import essential_sparsity, parse_pattern, parse_sparsities
from strongticket.files import atomic_directory, write_bytes_atomic, write_json_atomic
from strongticket.jsonio import jsonable
from strongticket.report.essential_plot import plot_essential
from strongticket.train.config import RunConfig

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("STRONGTICKET_DATA"))
    ap.add_argument("--config", default=str(HERE / "lenet300100_mnist_train.toml"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--snapshots-per-epoch", type=int, default=1)
    ap.add_argument("--sparsities", default="0:0.98:0.02,0.99")
    ap.add_argument("--out", default=str(HERE / "results" / "essential_sparsity"))
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()

    cfg = RunConfig.from_toml(args.config).with_updates(optim={"epochs": args.epochs})
    started = time.perf_counter()
    result = essential_sparsity(config=cfg, data_dir=args.data_dir, device="cpu",
                                sparsities=parse_sparsities(args.sparsities),
                                patterns=[parse_pattern("2:4"), parse_pattern("4:8")],
                                per_epoch=args.snapshots_per_epoch, note=print)
    total = time.perf_counter() - started
    record = {**result.to_dict(), "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                                              "torch_threads": torch.get_num_threads(),
                                              "load_average": os.getloadavg(), "total_seconds": total}}
    with atomic_directory(args.out, overwrite=args.overwrite, marker="essential.json", what="--out") as tmp:
        write_json_atomic(tmp / "essential.json", jsonable(record))
        write_bytes_atomic(tmp / "essential.md", result.to_markdown().encode())
        plot_essential(result, tmp / "essential.png")
    print(result.to_markdown())
    print(f"total {total:.1f} s, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
