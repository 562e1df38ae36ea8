"""Benchmark: mrss_search against the plain best-flip/best-swap descent, same instances, same process.

Instances: normally-scaled normal candidates (a scalar N(0, 1) times an N(0, I_d) vector: the samples of
structured pruning, da Cunha, d'Amore, Natale 2023), targets U[-1, 1]^d, error in l_inf
(``strongticket.subsetsum.instances.mrss_bench_instances``). For each (d, n): median and max error of both
methods and their throughput. CPU time is reported beside wall time because the machine may be shared:
``targets/s (2 cores, from CPU time)`` = 2 / (CPU seconds per target), the throughput two otherwise idle
cores would give. ``--cpsat`` adds CP-SAT (``mrss_milp``, 10 s per instance) on the first few targets of
the cells it names.

    python experiments/bench_mrss.py --targets 64 --dims 9 25 --ns 64 128 256 512 1024 \
        --cpsat 9:64 9:256 25:256 --out experiments/results/bench_mrss.json   # and bench_mrss.png
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from strongticket.subsetsum.bench_figure import plot_mrss_bench
from strongticket.subsetsum.benchmark import MrssBenchRow, run_mrss_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=64)
    ap.add_argument("--dims", type=int, nargs="+", default=[9, 25])
    ap.add_argument("--ns", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpsat", nargs="*", default=[], metavar="D:N",
                    help="cells (d:n) where CP-SAT also runs, on --cpsat-targets targets")
    ap.add_argument("--cpsat-targets", type=int, default=5)
    ap.add_argument("--cpsat-limit", type=float, default=10.0, help="CP-SAT seconds per instance")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cpsat = {tuple(int(v) for v in c.split(":")) for c in a.cpsat}
    t0 = time.perf_counter()
    print(MrssBenchRow.markdown_header())
    rows = run_mrss_benchmark(a.dims, a.ns, targets=a.targets, seed=a.seed, cpsat_cells=cpsat,
                              cpsat_targets=a.cpsat_targets, cpsat_limit=a.cpsat_limit,
                              on_row=lambda r: print(r.markdown(), flush=True))
    print(f"total {time.perf_counter() - t0:.0f} s wall")
    if a.out:
        with open(a.out, "w") as f:
            json.dump([r.__dict__ for r in rows], f, indent=1, default=float)
        png = plot_mrss_bench(a.out.rsplit(".", 1)[0] + ".png", rows)
        print(f"wrote {a.out} and {png}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
