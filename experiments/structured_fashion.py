"""Structured strong tickets (da Cunha, d'Amore, Natale 2023) of LeNet-5 on Fashion-MNIST: kernel, group, filter.

The target is the zoo's Caffe LeNet-5 (conv 5x5, pool, conv 5x5, pool, fc, fc; ``--width`` scales the channels)
with biases, trained briefly with the library's loop (Adam). Before the construction every layer is rescaled
so that its largest weight or bias is 1 (the theorem's cube [-1, 1]^D; ReLU and max pooling are positively
homogeneous, so the classifier's argmax and accuracy are unchanged, checked below) and one ``--eps`` serves
every layer. Then, per granularity (kernel, group ``--group``, filter) and for increasing widths ``H``
(``--widths``, intermediate channels per input channel), :func:`strongticket.construct.structured.construct`
builds the whole ticket (every layer pruned from the random network, biases on the constant channel, the Linear
after the Flatten through a 1x1 conv before it), ``strict=False``, inputs >= 0. A granularity stops at the
first width whose ticket is within ``--tolerance`` (1 point) of the target's test accuracy.

Reported per (granularity, width): test accuracy of the ticket (through ``Ticket.compact()``, checked against
``Ticket.to_module()`` on a few images at the smallest width), realised per-slice errors (max, median) and
instances above eps per layer, the instance dimension of each layer, parameters of the compacted ticket
against the random network and the target, construction wall and CPU time. For the last width of each
granularity: ``benchmark_compact`` (median latency of the compacted ticket over the masked random network,
batch 1 and 256, CPU; ratios measured in the same process). Where a granularity does not get within the
tolerance, the width it would take: first the per-entry error the target tolerates (every weight and bias
moved by U[-e, e], accuracy within the tolerance: the largest such ``e`` of a grid), then ``H = c D^a``
fitted to the widths ``strongticket verify scaling`` measured (``--scaling`` JSON) at the largest measured eps
<= e (a lower bound, marked ">=", when e is below every measured eps), at the ticket's largest instance
dimension D.
``--extrapolate-only`` redoes that part from an existing ``--out``.

Usage: ``python experiments/structured_fashion.py --data-dir DATA [--width 0.5] [--epochs 2]
[--widths 64,256,1024] [--granularities kernel,group,filter] [--group 5] [--eps 0.05]
[--scaling experiments/results/structured_scaling.json] [--out experiments/results/structured_fashion.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from strongticket.compact import num_parameters
from strongticket.compact_bench import benchmark_compact
from strongticket.construct import structured
from strongticket.files import save_tensors_atomic, write_bytes_atomic, write_json_atomic
from strongticket.nets.zoo import build_model
from strongticket.train.config import OptimConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import fit


def normalise_layers(target: nn.Sequential) -> tuple[nn.Sequential, list[float]]:
    """A copy whose Conv2d/Linear layers have max(|weight|, |bias|) = 1, same argmax (positive rescaling).

    Layer ``l`` is multiplied by ``a_l`` and its bias by ``c_l = a_1 ... a_l``: every later activation (ReLU, max
    pooling) is positively homogeneous, so the outputs become ``c_L`` times the original.
    """
    import copy

    out = copy.deepcopy(target)
    c, scales = 1.0, []
    with torch.no_grad():
        for m in out.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                top = float(m.weight.abs().max())
                if m.bias is not None:
                    top = max(top, c * float(m.bias.abs().max()))
                a = 1.0 / top
                m.weight.mul_(a)
                c *= a
                if m.bias is not None:
                    m.bias.mul_(c)
                scales.append(a)
    return out.eval(), scales


@torch.no_grad()
def accuracy_of(fn, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    return sum(int((fn(x[s:s + batch]).argmax(1) == y[s:s + batch]).sum()) for s in range(0, len(y), batch)) / len(y)


def train_target(args, ds) -> tuple[nn.Module, float]:
    target = build_model("lenet5", num_classes=10, in_channels=1, image_size=28, width=args.width, bias=True,
                         seed=args.seed)
    cache = Path(args.target_dir) / f"lenet5_fashion_w{args.width:g}_b1_e{args.epochs}_s{args.seed}.safetensors"
    t0 = time.perf_counter()
    if cache.is_file():
        from safetensors.torch import load_file

        target.load_state_dict(load_file(str(cache)))
    else:
        fit(target, ds, OptimConfig(optimizer="adam", lr=1e-3, epochs=args.epochs), batch_size=128, seed=args.seed)
        save_tensors_atomic(cache, {k: v.contiguous() for k, v in target.state_dict().items()})
    return target.eval(), time.perf_counter() - t0


def scaling_law(path: str, eps: float) -> dict | None:
    """``H = c D^a`` fitted (least squares in log-log) to the widths ``verify scaling`` measured at the largest
    measured eps <= ``eps`` (an over-estimate at ``eps``: a smaller error needs more width); when every measured
    eps is above ``eps``, at the smallest of them, and ``lower_bound`` says the width is then an under-estimate."""
    import math

    if not path or not Path(path).is_file():
        return None
    rows = [r for r in json.loads(Path(path).read_text())["rows"] if r["width"]]
    levels = sorted({r["eps"] for r in rows})
    if not levels:
        return None
    below = [e for e in levels if e <= eps]
    at = max(below) if below else min(levels)
    pts = [(r["dimension"], r["width"]) for r in rows if r["eps"] == at]
    if len(pts) < 2:
        return None
    xs, ys = [math.log(d) for d, _ in pts], [math.log(w) for _, w in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return {"eps": at, "exponent": a, "constant": math.exp(my - a * mx), "dims": [d for d, _ in pts],
            "lower_bound": not below}


@torch.no_grad()
def tolerable_error(target: nn.Module, x: torch.Tensor, y: torch.Tensor, tolerance: float, seed: int,
                    levels=(0.2, 0.1, 0.05, 0.02, 0.01, 0.005)) -> dict:
    """The largest per-entry error ``e`` (of the normalised layers) at which the target, every weight and bias
    moved by U[-e, e] (seeded), keeps its accuracy within ``tolerance``: what a ticket's per-slice l_inf error
    may be. Returns the accuracy at each level and ``eps`` (None if even the smallest level drops more)."""
    import copy

    base = accuracy_of(target, x, y)
    out, best = [], None
    g = torch.Generator().manual_seed(seed)
    for e in levels:
        noisy = copy.deepcopy(target)
        for p in noisy.parameters():
            p.add_((torch.rand(p.shape, generator=g) * 2 - 1) * e)
        acc = accuracy_of(noisy, x, y)
        out.append({"eps": e, "accuracy": acc})
        if best is None and acc >= base - tolerance:
            best = e
    return {"eps": best, "levels": out, "accuracy": base}


def extrapolate(res: dict, args) -> dict:
    """Per granularity that stayed outside the tolerance: the width its largest dimension needs at the tolerable
    error, by the measured scaling law (``width_needed_by_scaling``)."""
    ds = load_dataset("fashion-mnist", data_dir=args.data_dir)
    x, y = ds.test_x[:args.test_subset or None], ds.test_y[:args.test_subset or None]
    target, _ = train_target(args, ds)
    normed, _ = normalise_layers(target)
    tol = tolerable_error(normed, x, y, args.tolerance, args.seed)
    res["tolerable_error"] = tol
    law = scaling_law(args.scaling, tol["eps"] or min(lv["eps"] for lv in tol["levels"]))
    res["scaling_law"] = law
    for gran in {r["granularity"] for r in res["runs"]}:
        rows = [r for r in res["runs"] if r["granularity"] == gran]
        last = rows[-1]
        if last["within_tolerance"] or law is None:
            continue
        d = max(li["dimension"] for li in last["layers"])
        last["width_needed_by_scaling"] = {"width": law["constant"] * d ** law["exponent"], "dimension": d,
                                           "exponent": law["exponent"], "at_eps": law["eps"],
                                           "lower_bound": law["lower_bound"]}
    return res


def run(args) -> dict:
    torch.set_num_threads(2)
    ds = load_dataset("fashion-mnist", data_dir=args.data_dir)
    test_x, test_y = ds.test_x[:args.test_subset or None], ds.test_y[:args.test_subset or None]
    target, train_s = train_target(args, ds)
    target_acc = accuracy_of(target, test_x, test_y)
    normed, scales = normalise_layers(target)
    normed_acc = accuracy_of(normed, test_x, test_y)
    print(f"target: test accuracy {target_acc:.4f} (normalised {normed_acc:.4f}), {train_s:.0f} s; layer scales "
          f"{[round(s, 3) for s in scales]}", flush=True)
    target_params = sum(p.numel() for p in target.parameters())
    runs = []
    for gran in args.granularities.split(","):
        group = args.group if gran == "group" else None
        for n_w, H in enumerate(int(w) for w in args.widths.split(",")):
            cpu0, t0 = time.process_time(), time.perf_counter()
            ticket = structured.construct(normed, per_weight_eps=args.eps, block_size=H, granularity=gran, group=group,
                                          input_shape=(1, 28, 28), nonneg_input=True, strict=False, seed=args.seed,
                                          log=lambda m: print("  " + m, flush=True))
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            small = ticket.compact(torch.float32)
            acc = accuracy_of(small, test_x, test_y)
            check = None
            if n_w == 0:  # the compacted ticket is the ticket (the masked random network) on a few images
                x = test_x[:8].to(torch.float64)
                with torch.no_grad():
                    check = float((ticket.to_module(torch.float64)(x) - ticket.compact(torch.float64)(x)).abs().max())
            prov = ticket.provenance
            row = {
                "granularity": gran, "group": group, "width": H, "per_weight_eps": args.eps,
                "accuracy": acc, "target_accuracy": target_acc, "difference_points": 100 * (acc - target_acc),
                "within_tolerance": acc >= target_acc - args.tolerance,
                "compact_params": num_parameters(small), "random_params": ticket.num_params,
                "kept_weights": ticket.num_kept, "target_params": target_params,
                "construction_seconds": round(seconds, 1), "construction_cpu_seconds": round(cpu, 1),
                "compact_vs_masked_max_difference": check,
                "layers": [{"kind": li["kind"], "dimension": li["dimension"], "instances": li["instances"],
                            "candidates_mean": li["candidates"]["mean"], "error_max": li["errors"]["max"],
                            "error_median": li["errors"]["median"], "above_eps": li["above_eps"],
                            "kept_channels": li["kept_channels"], "channels": li["channels"],
                            "counting_lower_bound": li["counting_lower_bound"], "seconds": li["seconds"]}
                           for li in prov["layers"]],
            }
            print(f"{gran} H={H}: accuracy {acc:.4f} (target {target_acc:.4f}), compact {row['compact_params']} "
                  f"params (random {ticket.num_params}), {seconds:.0f} s ({cpu:.0f} s CPU), errors max "
                  f"{[round(li['error_max'], 3) for li in row['layers']]}", flush=True)
            last = n_w == len(args.widths.split(",")) - 1
            if row["within_tolerance"] or last:
                b1 = benchmark_compact(ticket, batches=(1,), repeats=args.repeats, warmup=2, seed=args.seed)
                b256 = benchmark_compact(ticket, batches=(256,), repeats=max(2, args.repeats // 5), warmup=1,
                                         seed=args.seed)
                row["bench"] = b1 + b256
                for r in row["bench"]:
                    print(f"  bench batch {r['batch']} {r['module']}: {r['median_ms']:.2f} ms, speed-up over the "
                          f"masked random network {r['speedup_vs_masked']:.2f}", flush=True)
            runs.append(row)
            del ticket, small
            if row["within_tolerance"]:
                break
    return {
        "experiment": "structured tickets (da Cunha, d'Amore, Natale 2023) of LeNet-5 on Fashion-MNIST",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "settings": {k: v for k, v in vars(args).items() if k != "data_dir"},
        "target": {"model": "lenet5", "width": args.width, "bias": True, "epochs": args.epochs,
                   "test_accuracy": target_acc, "normalised_test_accuracy": normed_acc, "layer_scales": scales,
                   "params": target_params, "train_seconds": round(train_s, 1), "test_images": len(test_y)},
        "runs": runs,
    }


def markdown(res: dict) -> str:
    t = res["target"]
    lines = [f"# {res['experiment']}", "",
             f"Target: LeNet-5 (width {t['width']:g}, biases), {t['epochs']} epochs, test accuracy "
             f"{100 * t['test_accuracy']:.2f} % on {t['test_images']} images, {t['params']} parameters. "
             f"Per-weight eps {res['settings']['eps']} (every layer rescaled to max |w| = 1).", ""]
    tol = res.get("tolerable_error")
    if tol:
        levels = ", ".join(f"{lv['eps']:g}: {100 * lv['accuracy']:.2f} %" for lv in tol["levels"])
        lines += [f"Tolerable per-entry error (target with U[-e, e] on every weight, within "
                  f"{100 * res['settings']['tolerance']:g} point): e = {tol['eps']} ({levels}).", ""]
    lines += ["| granularity | width H | dimensions | accuracy % (diff) | max error by layer | compact params | "
             "random params | construction s (CPU s) | speed-up b1 / b256 | width needed by scaling |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        sp = {b["batch"]: b["speedup_vs_masked"] for b in r.get("bench", []) if b["module"] == "compact"}
        need = r.get("width_needed_by_scaling")
        name = r["granularity"] + (f" g={r['group']}" if r["group"] else "")
        dims = "/".join(str(li["dimension"]) for li in r["layers"])
        errs = " / ".join(f"{li['error_max']:.3f}" for li in r["layers"])
        speed = f"{sp[1]:.1f} / {sp[256]:.1f}" if sp else ""
        needed = (f"{'>= ' if need['lower_bound'] else ''}{need['width']:.3g} (D {need['dimension']}, H = c D^"
                  f"{need['exponent']:.2f} at eps {need['at_eps']:g})" if need else "")
        lines.append(f"| {name} | {r['width']} | {dims} | {100 * r['accuracy']:.2f} ({r['difference_points']:+.2f}) "
                     f"| {errs} | {r['compact_params']} | {r['random_params']} | {r['construction_seconds']} "
                     f"({r['construction_cpu_seconds']}) | {speed} | {needed} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None, help="folder holding fashion-mnist/ (default: $STRONGTICKET_DATA)")
    ap.add_argument("--width", type=float, default=0.5, help="LeNet-5 channel multiplier")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--widths", default="64,256,1024", help="H values tried, ascending")
    ap.add_argument("--granularities", default="kernel,group,filter")
    ap.add_argument("--group", type=int, default=5)
    ap.add_argument("--eps", type=float, default=0.05)
    ap.add_argument("--tolerance", type=float, default=0.01, help="accuracy drop allowed (fraction)")
    ap.add_argument("--test-subset", type=int, default=0, help="first N test images (0: all)")
    ap.add_argument("--repeats", type=int, default=20, help="timed passes at batch 1 (a fifth at batch 256)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-dir", default="runs/structured_targets", help="where the trained target is cached")
    ap.add_argument("--scaling", default="experiments/results/structured_scaling.json")
    ap.add_argument("--out", default="experiments/results/structured_fashion.json")
    ap.add_argument("--extrapolate-only", action="store_true",
                    help="read --out, add the tolerable error and the widths by the scaling law, rewrite it")
    args = ap.parse_args()
    res = json.loads(Path(args.out).read_text()) if args.extrapolate_only else run(args)
    res = extrapolate(res, args)
    write_json_atomic(args.out, res)
    write_bytes_atomic(Path(args.out).with_suffix(".md"), markdown(res).encode())
    print(markdown(res))


if __name__ == "__main__":
    main()
