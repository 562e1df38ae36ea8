"""Measurement: Global Sparse Momentum SGD at 60x and the inertial-manifold reconstruction against one-shot
magnitude, on LeNet-300-100 / MNIST, on a short schedule that fits a few minutes of a 2-core CPU.

* GSM (Ding et al. 2019): its reference compression target for LeNet-300-100 is 60x (density 1/60). One run:
  dense phase, GSM phase, global magnitude mask, lottery retraining from the initial weights
  (``gsm_lottery``). Reported: the per-layer densities GSM found, the test accuracy of the dense model, of the
  GSM-trained model before the mask, of the pruned model without retraining, and after lottery retraining;
  the mean |w| of the weights the mask prunes before and after the GSM phase.
* Inertial (a reconstruction from the abstract of Zhang et al. 2021): one run at ``--im-density``:
  ``--im-steps`` SGD steps, the dominant Hessian eigenspace by Lanczos, one-shot pruning by energy in it,
  training; and in the same run the one-shot magnitude mask at the same point, trained the same way.
  Reported: the rank chosen, the top eigenvalues, both accuracies (before and after training) and how many
  kept weights the two masks share.

Shared schedule: every training phase ``--epochs`` epochs on a seeded ``--train-subset`` of MNIST (full 10 000
test images), SGD lr 0.05, momentum 0.9, constant rate, batch 128, kaiming-normal init, global scope, seed 0.
The weight decay (``--weight-decay``, 1e-2 by default) is well above GSM's reference 5e-4 because the
reference's 280 GSM epochs at momentum 0.99 are replaced here by ``--epochs``: the passive weights shrink by
about ``lr * weight_decay / (1 - momentum)`` per step, so this is what makes them small in a few hundred steps.

    python experiments/gsm_inertial.py --data-dir DATA --runs RUNS [--epochs 2] [--train-subset 20000]
        [--weight-decay 0.01] [--im-density 0.05] [--out experiments/results/gsm_inertial.json]

Runs are ordinary run directories under ``RUNS`` (``gsm``, ``inertial``); a finished one is read back, not
retrained, so a killed measurement resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.run import train_run

GSM_DENSITY = 1 / 60  # the reference compression target of LeNet-300-100 (60x)


def run_config(method: str, density: float, args: argparse.Namespace, **prune: Any) -> RunConfig:
    """The shared short schedule with ``method`` at ``density``."""
    return RunConfig(data=DataConfig(dataset="mnist", batch_size=128, train_subset=args.train_subset),
                     model=ModelConfig(model="lenet300100", init="kaiming_normal"),
                     optim=OptimConfig(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=args.weight_decay,
                                       epochs=args.epochs, schedule="constant"),
                     prune=PruneConfig(method=method, density=density, scope="global", **prune),
                     seed=0, checkpoint_every=args.epochs)


def gsm_row(s: dict[str, Any]) -> dict[str, Any]:
    """The GSM figures of one finished run."""
    g = s["gsm"]
    return {"density": s["density"], "compression": 1 / s["density"],
            "layer_densities": {r["name"]: r["density"] for r in s["layers"]},
            "dense_test_accuracy": g.get("dense_test_accuracy"), "gsm_test_accuracy": g["gsm_test_accuracy"],
            "pruned_test_accuracy": g["pruned_test_accuracy"], "lottery_test_accuracy": g.get("lottery_test_accuracy"),
            "passive_mean_abs_before": g["passive_mean_abs_before"],
            "passive_mean_abs_after": g["passive_mean_abs_after"],
            "kept_mean_abs_after": g["kept_mean_abs_after"],
            "phase_seconds": {k: round(v.get("seconds", 0.0), 1) for k, v in s["phases"].items()},
            "wall_time_s": s["wall_time_s"]}


def inertial_row(s: dict[str, Any]) -> dict[str, Any]:
    """The inertial-vs-magnitude figures of one finished run."""
    im = s["inertial"]
    keys = ["sgd_steps", "sgd_test_accuracy", "hessian_dim", "lanczos_iterations", "rank", "eigenvalues",
            "gap_ratio", "max_residual", "mask_agreement", "pruned_test_accuracy", "magnitude_pruned_test_accuracy",
            "test_accuracy", "magnitude_test_accuracy"]
    return {"density": s["density"], **{k: im.get(k) for k in keys},
            "layer_densities": {r["name"]: r["density"] for r in s["layers"]},
            "phase_seconds": {k: round(v.get("seconds", 0.0), 1) for k, v in s["phases"].items()},
            "wall_time_s": s["wall_time_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, help="Folder holding mnist/.")
    ap.add_argument("--runs", required=True, help="Folder for the run directories.")
    ap.add_argument("--epochs", type=int, default=2, help="Epochs per training phase.")
    ap.add_argument("--train-subset", type=int, default=20000, help="Training images used.")
    ap.add_argument("--weight-decay", type=float, default=1e-2, help="Weight decay of every phase.")
    ap.add_argument("--im-density", type=float, default=0.05, help="Density of the inertial and magnitude masks.")
    ap.add_argument("--im-steps", type=int, default=200, help="SGD steps before the inertial pruning.")
    ap.add_argument("--im-lanczos", type=int, default=30, help="Lanczos iterations.")
    ap.add_argument("--im-max-rank", type=int, default=20, help="Largest eigenspace considered.")
    ap.add_argument("--im-batches", type=int, default=2, help="Batches the Hessian averages over.")
    ap.add_argument("--out", default=None, help="Write the results as JSON here.")
    args = ap.parse_args()
    runs = Path(args.runs)
    settings = {k: v for k, v in vars(args).items() if k not in ("data_dir", "runs", "out")}  # no local paths
    results: dict[str, Any] = {"settings": settings}
    started = time.perf_counter()
    s = train_run(run_config("gsm", GSM_DENSITY, args, gsm_lottery=True), runs / "gsm", data_dir=args.data_dir)
    results["gsm"] = gsm_row(s)
    results["gsm"]["run_seconds"] = time.perf_counter() - started
    print(json.dumps({"gsm": results["gsm"]}, indent=1), flush=True)
    started = time.perf_counter()
    s = train_run(run_config("inertial", args.im_density, args, im_steps=args.im_steps, im_lanczos=args.im_lanczos,
                             im_max_rank=args.im_max_rank, im_batches=args.im_batches),
                  runs / "inertial", data_dir=args.data_dir)
    results["inertial"] = inertial_row(s)
    results["inertial"]["run_seconds"] = time.perf_counter() - started
    print(json.dumps({"inertial": results["inertial"]}, indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
