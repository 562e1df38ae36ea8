"""The exact solver's two ``min_error`` paths at 21-44 candidates: seconds and working memory, same process.

``strongticket.subsetsum.exact`` solves ``min_error`` four targets at a time while that path's tables fit in
``FOUR_TARGET_MAX_BYTES`` per thread (n <= 36), and one target at a time above (n >= 37), where the four-target
tables would take 96 MB (n = 37) to 768 MB (n = 44) per thread. This script times both paths on the same random
instances (U[-1, 1] candidates, U[-2, 2] targets, one thread, least CPU seconds of ``--repeat`` calls), checks
that they return the same keys and errors, and records each path's working memory: the peak resident set size
above the one before the call (``/proc/self/status`` VmHWM, reset through ``/proc/self/clear_refs`` before each
call; Linux).

``--baseline FILE`` also times another version of ``exact.py`` (e.g. the one before the one-target path,
extracted with ``git show REV:strongticket/subsetsum/exact.py > FILE``), loaded as a separate module, on the
same instances: the ratio ``auto / baseline`` is the change a caller sees.

Usage: ``python experiments/exact_memory_bench.py [--sizes 21,26,30,33,36,37,38,40,42,44] [--instances 16]
[--baseline FILE] [--out experiments/results/exact_memory_bench.json]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from strongticket.files import write_json_atomic
from strongticket.subsetsum import exact


def rss_kb(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, KB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def working_mb(fn) -> tuple[object, float]:
    """``fn()`` and the peak RSS it added above the RSS before it, MB."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current RSS
    before = rss_kb("VmRSS")
    out = fn()
    return out, (rss_kb("VmHWM") - before) / 1024


def best_seconds(fn, repeat: int) -> float:
    """Least CPU seconds of this process (``time.process_time``: robust to a shared machine) over ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def load_baseline(path: str):
    spec = importlib.util.spec_from_file_location("exact_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # numba's cache reloads compiled code by module name
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="21,26,30,33,36,37,38,40,42,44")
    ap.add_argument("--instances", type=int, default=16, help="targets per size")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", default=None, help="another exact.py to time on the same instances")
    ap.add_argument("--out", default="experiments/results/exact_memory_bench.json")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    base = load_baseline(args.baseline) if args.baseline else None
    warm_x, warm_z = rng.uniform(-1, 1, (4, 10)), rng.uniform(-2, 2, 4)
    for one in (False, True):  # compile before timing
        exact.solve_exact_keys(warm_x, warm_z, num_threads=1, one_target=one)
    if base is not None:
        base.solve_exact_keys(warm_x, warm_z, num_threads=1)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        x = rng.uniform(-1, 1, (args.instances, n))
        z = rng.uniform(-2, 2, args.instances)
        row = {"n": n, "instances": args.instances, "auto_path": "four" if exact.four_target_bytes(n)
               <= exact.FOUR_TARGET_MAX_BYTES else "one"}
        answers = {}
        for name, call in (("four", lambda: exact.solve_exact_keys(x, z, num_threads=1, one_target=False)),
                           ("one", lambda: exact.solve_exact_keys(x, z, num_threads=1, one_target=True)),
                           ("auto", lambda: exact.solve_exact_keys(x, z, num_threads=1)),
                           *((("baseline", lambda: base.solve_exact_keys(x, z, num_threads=1)),) if base else ())):
            answers[name], mb = working_mb(call)
            row[f"{name}_working_mb"] = round(mb, 1)
            row[f"{name}_seconds"] = round(best_seconds(call, args.repeat), 4)
        first = answers["four"]
        row["same_answers"] = all(np.array_equal(a[0], first[0]) and np.array_equal(a[1], first[1])
                                  for a in answers.values())
        row["one_over_four_seconds"] = round(row["one_seconds"] / row["four_seconds"], 3)
        if base is not None:
            row["auto_over_baseline_seconds"] = round(row["auto_seconds"] / row["baseline_seconds"], 3)
        row["four_target_bytes_mb"] = round(exact.four_target_bytes(n) / 2 ** 20, 1)
        row["one_target_bytes_mb"] = round(exact.one_target_bytes(n) / 2 ** 20, 1)
        print(row, flush=True)
        rows.append(row)
    out = {"experiment": "exact min_error: four-target vs one-target path (experiments/exact_memory_bench.py)",
           "command": "python experiments/exact_memory_bench.py " + " ".join(
               f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"),
           "threads": 1, "seconds": "CPU seconds (process_time), least of --repeat", "rows": rows,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    write_json_atomic(Path(args.out), out)


if __name__ == "__main__":
    main()
