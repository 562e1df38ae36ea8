"""Error amplification of depth-(L+1) tickets per layer: min_error vs sparsest, dense vs IMP-pruned targets.

R. Burkholz, "Most Activation Functions Can Win the Lottery Without Excessive Depth", NeurIPS 2022: in the L+1
construction a copy's pre-activation error is its own subset-sum error plus the previous copies' errors
multiplied by the kept weights, ``sum_j sum_{k in S_ij} |v| e_{j,k}``, so the subset sizes multiply the error
propagated to the next layer (``docs/constructions.md``). This script measures it on LeNet-300-100 MNIST targets
(ReLU, dense and IMP-style magnitude-pruned to ``--density``), per random layer ``k + 1 >= 2`` on
``--images`` test images:

* ``propagated``: the copies' error ``|h_copy - a_i|`` in the ticket as it runs (its previous layer's outputs);
* ``local``: the same layer fed the target's exact previous activations (each copy of input j gets ``a_j``, the
  constant neurons their exact values): the layer's own error;
* ``amplified = propagated - local`` and ``gain = amplified / propagated error of the layer before`` (mean over
  copies and images of the absolute errors, and the largest), the realised ``sum |v|`` per copy (mean and
  largest) and the mean subset size;
* the ticket's test accuracy beside the target's.

With ``--model lenet5`` the same measurement runs on the CNN case (:mod:`strongticket.construct.lplus1_conv`):
the zoo's LeNet-5 with biases trained ``--epochs`` epochs (dense only), per random layer ``k + 1 >= 2`` the
copies' errors over every channel and position (a copy channel of target channel ``j`` against the target's
channel ``j``; the layer after the Flatten per feature), ``sum |v|`` over the copies' kernels (every tap) or
weights, on ``--images`` test images in float64, batched (``--batch``); the ticket's accuracy in float32 on the
first ``--test-images`` test images beside the target's on the same images; construction and evaluation CPU
seconds and the peak RSS.

Usage: ``python experiments/lplus1_amplification.py --data-dir DATA [--rhos 15,30] [--objectives
min_error,sparsest] [--out experiments/results/lplus1_amplification.json]``; the CNN case:
``python experiments/lplus1_amplification.py --data-dir DATA --model lenet5 --rhos 15,30 --objectives sparsest
--extra "" --images 200 --test-images 2000`` (results in ``experiments/results/lplus1_amplification_cnn.json``).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from burkholz_table1 import SparseTicket, lenet, magnitude_prune
from strongticket.construct import lplus1, lplus1_conv
from strongticket.nets.spec import Conv2d, Linear
from strongticket.nets.zoo import build_model
from strongticket.files import write_json_atomic
from strongticket.nets.activations import activation
from strongticket.ticket import Ticket, recorded_target
from strongticket.train.data import load_dataset
from strongticket.verify.accuracy import accuracy
from strongticket.verify.measure import target_module
from targets import train_adam


def layer_errors(ticket: Ticket, target: torch.nn.Module, x: torch.Tensor) -> list[dict]:
    """Per random layer ``k + 1 >= 2``: propagated and local errors of the copies, float64, on inputs ``x``."""
    tgt = lplus1.read_target(target.double(), tuple(x.shape[1:]))
    layout, _ = lplus1.layout_of(ticket)
    names = lplus1.layer_names(ticket.spec)
    w = ticket.random_weights()
    mats = [torch.where(ticket.masks[n], w[n], 0.0).double().to_sparse_csr() for n in names]
    acts = [activation(a).fn for a in (tgt.activations[0],) + tgt.activations]
    h = torch.cat([x.flatten(1).double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1).T.contiguous()
    a = x.flatten(1).double().T
    h = acts[0](torch.sparse.mm(mats[0], h))  # copying layer
    out, prev_mean = [], None
    for k in range(1, layout.num_layers + 1):
        nc_prev = layout.copies(k - 1) if k > 1 else None
        ideal = h.clone()
        if k > 1:  # the target's exact activations at the previous copies; constants are exact already
            ideal[:nc_prev] = a.repeat_interleave(layout.multiplicity(k - 1), dim=0)
        a = acts[k](torch.from_numpy(tgt.weights[k - 1]) @ a + torch.from_numpy(tgt.biases[k - 1])[:, None])
        h_next = acts[k](torch.sparse.mm(mats[k], h))
        local = acts[k](torch.sparse.mm(mats[k], ideal))
        nc = layout.copies(k)
        ref = a.repeat_interleave(layout.multiplicity(k), dim=0)
        e_prop = (h_next[:nc] - ref).abs()
        e_loc = (local[:nc] - ref).abs()
        vm = mats[k].to_dense()[:nc, :nc_prev] if k > 1 else None
        amp = vm.abs().sum(dim=1) if vm is not None else None
        row = {"random_layer": k + 1, "propagated_mean": float(e_prop.mean()), "propagated_max": float(e_prop.max()),
               "local_mean": float(e_loc.mean()), "local_max": float(e_loc.max()),
               "amplified_mean": float((e_prop - e_loc).mean())}
        if amp is not None:
            row.update({"sum_abs_v_mean": float(amp.mean()), "sum_abs_v_max": float(amp.max()),
                        "gain_mean": float((e_prop - e_loc).mean()) / prev_mean if prev_mean else None})
        out.append(row)
        prev_mean = float(e_prop.mean())
        h = h_next
    return out


def _repeat(a: torch.Tensor, m: int) -> torch.Tensor:
    """Every channel (or feature) of ``a`` (batch first) ``m`` times in a row: the copies' order."""
    return a.repeat_interleave(m, dim=1)


@torch.no_grad()
def conv_layer_errors(ticket: Ticket, x: torch.Tensor, batch: int = 50) -> list[dict]:
    """The CNN case of :func:`layer_errors`: per random layer ``k + 1 >= 2`` of an L+1 CNN ticket, float64.

    The random network runs beside the target layer by layer (random layer ``t + 1`` is target layer ``t``'s,
    pooling and flattening copied). ``ideal`` is the random network's activations with every copy replaced by
    the target's activation of its channel (constants kept): the next layer fed ``ideal`` gives the local
    error. Means are over copies, positions and images; ``sum_abs_v`` over a copy's kept weights from copies
    (every tap).
    """
    layout, _ = lplus1.layout_of(ticket)
    g = ticket.to_module(torch.float64).eval()
    f = target_module(ticket)  # the recorded target as a spec network: one module per spec layer
    tspec = lplus1_conv.read_target(recorded_target(ticket)).traced.spec
    stage_of = {}
    for i, layer in enumerate(tspec.layers):
        if isinstance(layer, (Conv2d, Linear)):
            stage_of[i] = len(stage_of) + 1
    acts = g._acts
    rows: dict[int, dict] = {}
    for s in range(0, len(x), batch):
        xb = x[s:s + batch].double()
        h = acts[0](g.layers[0](torch.cat([xb, torch.ones_like(xb[:, :1])], dim=1)))  # copying layer
        ideal, a = h, xb
        for i, layer in enumerate(tspec.layers):
            mod, act = g.layers[i + 1], acts[i + 1]
            a = f._acts[i](f.layers[i](a))
            if i not in stage_of:
                h, ideal = act(mod(h)), act(mod(ideal))
                continue
            k = stage_of[i]
            h_next, local = act(mod(h)), act(mod(ideal))
            nc, mult = layout.copies(k), layout.multiplicity(k)
            ref = _repeat(a, mult)
            e_prop, e_loc = (h_next[:, :nc] - ref).abs(), (local[:, :nc] - ref).abs()
            r = rows.setdefault(k, {"random_layer": k + 1, "prop_sum": 0.0, "prop_max": 0.0, "loc_sum": 0.0,
                                    "loc_max": 0.0, "count": 0})
            r["prop_sum"] += float(e_prop.sum())
            r["loc_sum"] += float(e_loc.sum())
            r["prop_max"] = max(r["prop_max"], float(e_prop.max()))
            r["loc_max"] = max(r["loc_max"], float(e_loc.max()))
            r["count"] += e_prop.numel()
            ideal = h_next.clone()
            ideal[:, :nc] = ref
            h = h_next
    out, prev_mean = [], None
    for k in sorted(rows):
        r = rows[k]
        row = {"random_layer": r["random_layer"], "propagated_mean": r["prop_sum"] / r["count"],
               "propagated_max": r["prop_max"], "local_mean": r["loc_sum"] / r["count"], "local_max": r["loc_max"],
               "amplified_mean": (r["prop_sum"] - r["loc_sum"]) / r["count"]}
        if k > 1:
            name = f"layers.{[i for i, kk in stage_of.items() if kk == k][0] + 1}.weight"
            w = g.state_dict()[name]
            nc, nc_prev = layout.copies(k), layout.copies(k - 1)
            if w.dim() == 4:
                amp = w[:nc, :nc_prev].abs().sum(dim=(1, 2, 3))
            else:  # a Linear: after a Flatten its columns are channel-major, positions per channel
                positions = w.shape[1] // layout.rows(k - 1)
                amp = w[:nc, :nc_prev * positions].abs().sum(dim=1)
            row.update({"sum_abs_v_mean": float(amp.mean()), "sum_abs_v_max": float(amp.max()),
                        "gain_mean": row["amplified_mean"] / prev_mean if prev_mean else None})
        out.append(row)
        prev_mean = row["propagated_mean"]
    return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main_cnn(args, log) -> None:
    """``--model lenet5``: the dense LeNet-5 target, its L+1 CNN tickets per (objective, rho)."""
    ds = load_dataset("mnist", data_dir=args.data_dir)
    shape = tuple(ds.test_x.shape[1:])
    model = build_model("lenet5", bias=True, seed=0, in_channels=shape[0], image_size=shape[1])
    target = train_adam(model, ds, epochs=args.epochs, seed=0, log=log, label="target: ").eval()
    tx, ty = ds.test_x[:args.test_images], ds.test_y[:args.test_images]
    x = ds.test_x[:args.images]
    plan = [(o, int(r)) for o in args.objectives.split(",") for r in args.rhos.split(",")]
    plan += [(o, int(r)) for t, o, r in (e.split(":") for e in args.extra.split(",") if e) if t == "dense"]
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("data_dir", "out")},
              "target": {"model": "lenet5", "bias": True, "test_accuracy_full": accuracy(target, ds.test_x, ds.test_y),
                         "test_accuracy": accuracy(target, tx, ty),
                         "params": sum(p.numel() for p in target.parameters())},
              "runs": []}
    for objective, rho in plan:
        log(f"lenet5 dense {objective} rho {rho} ...")
        t0, c0 = time.perf_counter(), time.process_time()
        ticket = lplus1.construct(target, eps=args.eps, rho=rho, seed=args.seed, objective=objective,
                                  nonneg_input=True, input_shape=shape, log=log)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rss_built = peak_rss_mb()
        t1, c1 = time.perf_counter(), time.process_time()
        g = ticket.to_module(torch.float32).eval()
        acc = accuracy(g, tx, ty)
        del g
        layers = conv_layer_errors(ticket, x, batch=args.batch)
        prov = ticket.provenance
        run = {"target": "dense", "objective": objective, "rho": rho, "test_accuracy": acc,
               "target_accuracy": result["target"]["test_accuracy"], "test_images": len(tx),
               "construction_seconds": round(wall, 1), "construction_cpu_seconds": round(cpu, 1),
               "evaluation_seconds": round(time.perf_counter() - t1, 1),
               "evaluation_cpu_seconds": round(time.process_time() - c1, 1),
               "peak_rss_mb_after_construction": round(rss_built), "peak_rss_mb": round(peak_rss_mb()),
               "instances_above_eps": prov["instances_above_eps"], "ticket_params": ticket.num_kept,
               "random_params": ticket.num_params, "certified_linf_bound": prov["certified_bound"]["bound"],
               "subset_size": [{"mean": r["weights"]["mean_subset_size"], "max": r["weights"]["max_subset_size"],
                                "mean_error": r["weights"]["mean_error"], "above_eps": r["weights"]["above_eps"]}
                               for r in prov["layers"]],
               "layers": layers}
        del ticket
        result["runs"].append(run)
        log(f"lenet5 {objective} rho {rho}: accuracy {acc:.4f} (target {run['target_accuracy']:.4f}); peak RSS "
            f"{run['peak_rss_mb']:.0f} MB; "
            + "; ".join(f"L{r['random_layer']} prop {r['propagated_mean']:.3g} local {r['local_mean']:.3g}"
                        for r in layers))
        write_json_atomic(args.out, result)
    log(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("STRONGTICKET_DATA"))
    ap.add_argument("--model", choices=("lenet300100", "lenet5"), default="lenet300100",
                    help="lenet300100: the FC case (dense and IMP targets); lenet5: the CNN case (dense target)")
    ap.add_argument("--out", default=None, help="default experiments/results/lplus1_amplification.json, "
                                                "lplus1_amplification_cnn.json for --model lenet5")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--prune-rounds", type=int, default=2)
    ap.add_argument("--rhos", default="15")
    ap.add_argument("--objectives", default="min_error,sparsest")
    ap.add_argument("--extra", default="dense:sparsest:30",
                    help="more (target:objective:rho) runs, comma-separated, e.g. the dense target at rho 30")
    ap.add_argument("--eps", type=float, default=0.01)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-images", type=int, default=10000, help="lenet5: test images for the accuracies")
    ap.add_argument("--batch", type=int, default=50, help="lenet5: images per float64 batch of the errors")
    args = ap.parse_args()
    if args.out is None:
        args.out = ("experiments/results/lplus1_amplification_cnn.json" if args.model == "lenet5"
                    else "experiments/results/lplus1_amplification.json")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    if args.model == "lenet5":
        main_cnn(args, log)
        return

    ds = load_dataset("mnist", data_dir=args.data_dir)
    widths = [784, 300, 100, 10]
    dense = train_adam(lenet(widths, "relu", 0), ds, epochs=args.epochs, seed=0, log=log, label="dense target: ")
    sparse = lenet(widths, "relu", 0)
    sparse.load_state_dict(dense.state_dict())
    sparse = magnitude_prune(sparse, ds, args.density, args.prune_rounds, args.epochs, 0, log)
    targets = {"dense": dense.eval(), f"imp{args.density:g}": sparse.eval()}
    plan = [(t, o, int(r)) for t in targets for o in args.objectives.split(",") for r in args.rhos.split(",")]
    plan += [(t, o, int(r)) for t, o, r in (e.split(":") for e in args.extra.split(",") if e)]
    x = ds.test_x[:args.images]
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("data_dir", "out")},
              "targets": {n: {"test_accuracy": accuracy(t, ds.test_x, ds.test_y),
                              "nonzero_weights": sum(int((p != 0).sum()) for n_, p in t.named_parameters()
                                                     if n_.endswith("weight"))} for n, t in targets.items()},
              "runs": []}
    for name, objective, rho in plan:
        target = targets[name]
        log(f"{name} {objective} rho {rho} ...")
        t0, c0 = time.perf_counter(), time.process_time()
        ticket = lplus1.construct(target, eps=args.eps, rho=rho, seed=args.seed, objective=objective,
                                  nonneg_input=True, log=log)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        g = SparseTicket(ticket, torch.float32)
        acc = accuracy(g, ds.test_x, ds.test_y)
        del g
        f64 = lenet(widths, "relu", 0).double()
        f64.load_state_dict({k: v.double() for k, v in target.state_dict().items()})
        layers = layer_errors(ticket, f64, x)
        prov = ticket.provenance
        run = {"target": name, "objective": objective, "rho": rho, "test_accuracy": acc,
               "target_accuracy": result["targets"][name]["test_accuracy"],
               "construction_seconds": round(wall, 1), "construction_cpu_seconds": round(cpu, 1),
               "instances_above_eps": prov["instances_above_eps"], "ticket_params": ticket.num_kept,
               "random_params": ticket.num_params,
               "subset_size": [{"mean": r["weights"]["mean_subset_size"], "max": r["weights"]["max_subset_size"],
                                "mean_error": r["weights"]["mean_error"], "above_eps": r["weights"]["above_eps"]}
                               for r in prov["layers"]],
               "layers": layers}
        result["runs"].append(run)
        log(f"{name} {objective} rho {rho}: accuracy {acc:.4f} (target {run['target_accuracy']:.4f}); "
            + "; ".join(f"L{r['random_layer']} prop {r['propagated_mean']:.3g} local {r['local_mean']:.3g}"
                        for r in layers))
        write_json_atomic(args.out, result)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
