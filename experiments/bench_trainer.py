"""Benchmark: one MNIST epoch of LeNet-300-100 at batch 128 with the strongticket trainer vs a plain DataLoader loop.

Both loops train the same network with the same optimiser (SGD, lr 0.1) on the same device, in the same
process; the trainer keeps MNIST as tensors on the device and gathers batches by index, the baseline is the
textbook ``torch.utils.data.DataLoader(TensorDataset(...), batch_size=128, shuffle=True)`` loop. Reported:
seconds per epoch (median of ``--repeats``) for each, with and without a mask, and the ratio.

    python experiments/bench_trainer.py --data-dir DATA [--device auto] [--repeats 3] [--json]

The acceptance target is <= 1.5 s per epoch for the trainer on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from strongticket.nets.zoo import build_model
from strongticket.train.config import OptimConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import Trainer
from strongticket.train.masking import MaskedModel, init_weights, mask_from_scores, prunable_names
from strongticket.train.run import resolve_device


def fresh_net(device: torch.device) -> torch.nn.Module:
    net = build_model("lenet300100", seed=0)
    init_weights(net, "default", torch.Generator().manual_seed(0))
    return net.to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_trainer(data, device, masked: bool) -> float:
    net = fresh_net(device)
    masks = None
    if masked:
        names = prunable_names(net)
        params = dict(net.named_parameters())
        g = torch.Generator().manual_seed(1)
        masks = mask_from_scores({n: torch.rand(params[n].shape, generator=g) for n in names}, 0.1)
    model = MaskedModel(net, masks)
    trainer = Trainer(model, data, OptimConfig(epochs=1, lr=0.1), list(net.parameters()), seed=0, batch_size=128)
    sync(device)
    t = time.perf_counter()
    trainer.run()
    sync(device)
    return time.perf_counter() - t


def time_dataloader(data, device) -> float:
    net = fresh_net(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(data.train_x.cpu(), data.train_y.cpu()), batch_size=128, shuffle=True,
                        generator=torch.Generator().manual_seed(0), pin_memory=device.type == "cuda")
    sync(device)
    t = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = resolve_device(args.device)
    data = load_dataset("mnist", args.data_dir, device)
    time_trainer(data, device, False)  # warm-up (allocator, kernels)
    res: dict[str, list[float]] = {"trainer": [], "trainer_masked": [], "dataloader": []}
    for _ in range(args.repeats):
        res["dataloader"].append(time_dataloader(data, device))
        res["trainer"].append(time_trainer(data, device, False))
        res["trainer_masked"].append(time_trainer(data, device, True))
    med = {k: statistics.median(v) for k, v in res.items()}
    out = {"device": str(device), "threads": torch.get_num_threads(), "epoch_seconds": med, "all": res,
           "speedup_vs_dataloader": med["dataloader"] / med["trainer"],
           "masked_speedup_vs_dataloader": med["dataloader"] / med["trainer_masked"],
           "target_met": med["trainer"] <= 1.5}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"device {device}, {torch.get_num_threads()} threads, median of {args.repeats}")
        for k, v in med.items():
            print(f"  {k:15s} {v:6.3f} s/epoch")
        print(f"  DataLoader / trainer = {out['speedup_vs_dataloader']:.2f}x "
              f"(masked: {out['masked_speedup_vs_dataloader']:.2f}x); <= 1.5 s: {out['target_met']}")


if __name__ == "__main__":
    main()
