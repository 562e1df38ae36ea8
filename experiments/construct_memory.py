"""Peak memory of a 2L construction against the size of the random network it prunes.

A 2L construction (``strongticket.construct.engine``) never needs the whole random network in memory: it draws
each layer's weights in row chunks, solves the chunk's instances and keeps only masks (1 byte per random
weight) and per-target-weight errors. This script measures how close it comes: the random network's own
size (float32 bytes of every random weight) against the process's peak resident set size during the
construction, and the peak above the RSS the process had before it started (Python, torch and the target).

Cases (targets trained briefly by the library's loop, :func:`strongticket.train.loop.fit`, Adam, lr 1e-3,
cached in ``--target-dir``):

* ``lenet300100-pensia``: LeNet-300-100 with biases (1 epoch on 10 000 MNIST images), Pensia et al. 2020,
  n = 21, per-weight eps' 0.01, non-negative inputs (the comparison's 2L row);
* ``conv2-cnn2l``: Conv-2 with biases (1 epoch on 10 000 Fashion-MNIST images), da Cunha et al. 2022, n = 21,
  conv layers at eps' = 1e-3 rms(K), Linear layers at 1e-3 (``experiments/dacunha_lenet5.py --model conv2``);
* ``lenet5-cnn2l``: LeNet-5 with biases (1 epoch on 10 000 MNIST images), the same da Cunha settings
  (``experiments/dacunha_lenet5.py``); its wider-pool retries reach 44 candidates (the exact solver's limit);
* ``lenet5w025-cnn2l``: the same at a quarter of LeNet-5's width (a small cnn2l case, for ticket equality checks).

Every run also records ``ticket_sha256``: a hash of the ticket's masks (names, shapes, bytes) and of its
provenance without its timings (every key naming seconds), so that two versions of the code can be checked to
build the same ticket bit for bit.

Peak RSS is ``ru_maxrss`` of this process (Linux: KB); run it under ``/usr/bin/time -v`` for the same figure
from outside. ``--tracemalloc`` also records the peak of the allocations Python and numpy report (slower).

Usage: ``python experiments/construct_memory.py --data-dir DATA --case lenet300100-pensia
[--out experiments/results/construct_memory_lenet300100-pensia.json]``. The committed
``experiments/results/construct_memory.json`` gathers one run per case of the code before and after the
construction worked in units (same targets, identical tickets).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import resource
import time
import tracemalloc
from pathlib import Path

import torch

from strongticket.construct import cnn2l, pensia
from strongticket.files import save_tensors_atomic, write_json_atomic
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.zoo import build_model
from strongticket.train.config import OptimConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import fit

CASES = {
    "lenet300100-pensia": {"model": "lenet300100", "dataset": "mnist"},
    "conv2-cnn2l": {"model": "conv2", "dataset": "fashion-mnist"},
    "lenet5-cnn2l": {"model": "lenet5", "dataset": "mnist"},
    "lenet5w025-cnn2l": {"model": "lenet5", "dataset": "mnist", "width": 0.25},
}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size now, MB (from /proc/self/statm)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _without_timings(value):
    """``value`` (JSON-like) without the entries whose key names a duration (``seconds``, ``*_seconds``)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "seconds" not in str(k)}
    if isinstance(value, (list, tuple)):
        return [_without_timings(v) for v in value]
    return value


def ticket_sha256(ticket) -> str:
    """SHA-256 of a ticket's masks (sorted names, shapes, bytes) and of its provenance without timings."""
    h = hashlib.sha256()
    for name in sorted(ticket.masks):
        m = ticket.masks[name].detach().cpu().contiguous()
        h.update(f"{name}{tuple(m.shape)}{m.dtype}".encode())
        h.update(m.numpy().tobytes())
    h.update(json.dumps(_without_timings(ticket.provenance), sort_keys=True, default=str).encode())
    return h.hexdigest()


def target_for(case: str, args) -> torch.nn.Module:
    info = CASES[case]
    width = info.get("width", 1.0)
    model = build_model(info["model"], num_classes=10, in_channels=1, image_size=28, width=width, bias=True,
                        seed=args.seed)
    tag = "" if width == 1.0 else f"_w{width:g}"
    cache = (Path(args.target_dir)
             / f"memory_{info['model']}{tag}_{info['dataset']}_e1_n10000_s{args.seed}.safetensors")
    if cache.is_file():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(cache)))
        return model.eval()
    ds = load_dataset(info["dataset"], data_dir=args.data_dir)
    idx = torch.randperm(len(ds.train_y), generator=torch.Generator().manual_seed(args.seed))[:10000]
    ds = dataclasses.replace(ds, train_x=ds.train_x[idx], train_y=ds.train_y[idx])
    fit(model, ds, OptimConfig(optimizer="adam", lr=1e-3, epochs=1), batch_size=128, seed=args.seed)
    save_tensors_atomic(cache, {k: v.contiguous() for k, v in model.state_dict().items()})
    return model.eval()


def build(case: str, target: torch.nn.Module, log) -> object:
    dist = WeightDistribution.uniform(-1, 1)
    if case == "lenet300100-pensia":
        return pensia.construct(target, per_weight_eps=0.01, samples=21, input_shape=(1, 28, 28), nonneg_input=True,
                                seed=0, distribution=dist, strict=False, log=log)
    eps = [1e-3 * float(m.weight.detach().double().norm() / m.weight.numel() ** 0.5)
           if isinstance(m, torch.nn.Conv2d) else 1e-3
           for m in target.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    return cnn2l.construct(target, per_weight_eps=eps, samples=21, input_shape=(1, 28, 28), nonneg_input=True,
                           seed=0, distribution=dist, strict=False, log=log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("STRONGTICKET_DATA"))
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--target-dir", default="experiments/results", help="where trained targets are cached")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python/numpy allocations (slower)")
    ap.add_argument("--out", default=None, help="JSON result (default experiments/results/construct_memory_CASE.json)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg} (RSS {current_rss_mb():.0f} MB, peak {peak_rss_mb():.0f} MB)",
              flush=True)

    target = target_for(args.case, args)
    rss_before = current_rss_mb()
    if args.tracemalloc:
        tracemalloc.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    ticket = build(args.case, target, log)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    traced_peak = None
    if args.tracemalloc:
        traced_peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
    peak = peak_rss_mb()
    random_mb = ticket.num_params * 4 / 2 ** 20
    out = {
        "case": args.case, "random_params": ticket.num_params, "random_float32_mb": round(random_mb, 1),
        "rss_before_mb": round(rss_before, 1), "peak_rss_mb": round(peak, 1),
        "peak_over_random": round(peak / random_mb, 3),
        "peak_above_before_over_random": round((peak - rss_before) / random_mb, 3),
        "traced_peak_mb": None if traced_peak is None else round(traced_peak, 1),
        "construction_seconds": round(seconds, 1), "construction_cpu_seconds": round(cpu, 1),
        "max_error": ticket.provenance["max_error"], "weights_above_eps": ticket.provenance["weights_above_eps"],
        "ticket_sha256": ticket_sha256(ticket),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(out, flush=True)
    write_json_atomic(Path(args.out or f"experiments/results/construct_memory_{args.case}.json"), out)


if __name__ == "__main__":
    main()
