"""Ticket transfer across datasets and optimisers (Morcos, Yu, Paganini, Tian 2019, "One ticket to win them all:
generalizing lottery ticket initializations across datasets and optimizers", NeurIPS), small scale.

For every seed of the TOML (``experiments/transfer.toml``) and every configuration (a dataset and an optimiser,
``[[config]]``):

* ``imp-<config>``: an IMP ticket drawn on that configuration (``--method imp`` to ``density`` at ``rate`` per
  round, reset to the initial weights), the *source*;
* ``dense-<config>``: the dense network trained on it, the reference;

then for every (source, target) pair, both trained on the target configuration by ``--method transfer``
(``--mask-from`` the source, surviving weights from the source's initial weights):

* ``<source>-on-<target>``: the source's ticket; the *target-drawn* ticket when source = target;
* ``<source>-on-<target>-shuffled``: the source's mask permuted within each layer, from the same weights (the
  random ticket with the source's per-layer densities).

Every run is an ordinary ``strongticket train`` run directory under ``--out``, so a rerun of the same command
skips finished runs and resumes the one a kill interrupted. The table
(:mod:`strongticket.report.transfer`: source, target, kind, mean ± std of the test accuracy over the seeds) goes
to ``<prefix>.md`` with the settings and the wall time, every run's record to ``<prefix>.json``.

Usage: ``python experiments/transfer.py [experiments/transfer.toml] --data-dir DATA [--quick]
[--out runs/transfer] [--results PREFIX] [--device cpu]`` (``DATA`` holds ``mnist/`` and ``fashion-mnist/``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongticket.compare.config import check_table, merge_tables
from strongticket.errors import InputError, StrongTicketError
from strongticket.files import read_toml, write_bytes_atomic
from strongticket.report import transfer as report
from strongticket.train.config import RunConfig
from strongticket.train.run import train_run

TOP_KEYS = ("name", "seeds", "density", "rate", "config", "base", "quick")
CONFIG_KEYS = ("name", "data", "optim")
QUICK_KEYS = ("seeds", "density", "rate", "base")


@dataclass(frozen=True)
class Plan:
    """The checked TOML: title, seeds, ticket density, IMP rate, configurations, shared base (nested dicts)."""

    name: str
    seeds: tuple[int, ...]
    density: float
    rate: float
    configs: tuple[dict[str, Any], ...]
    base: dict[str, Any]


@dataclass(frozen=True)
class Unit:
    """One training run: its directory and configuration, and what the table calls it."""

    directory: Path
    config: RunConfig
    label: str


def read_plan(path: Path, quick: bool) -> Plan:
    """Read and check the TOML (``[quick]`` merged over it when ``quick``); errors name the key."""
    raw = read_toml(path, "experiment config")
    check_table(raw, TOP_KEYS, str(path))
    if quick:
        raw = merge_tables(raw, check_table(raw.get("quick", {}), QUICK_KEYS, "[quick]"))
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           and s >= 0 for s in seeds):
        raise InputError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    configs = raw.get("config")
    if not isinstance(configs, list) or len(configs) < 2:
        raise InputError(f"[[config]] must list at least two configurations, got {configs!r}")
    names = []
    for i, c in enumerate(configs):
        check_table(c, CONFIG_KEYS, f"[[config]] #{i + 1}")
        if not isinstance(c.get("name"), str) or not c["name"].replace("-", "").isalnum():
            raise InputError(f"[[config]] #{i + 1}: name must be letters, digits and dashes, got {c.get('name')!r}")
        names.append(c["name"])
    if len(set(names)) != len(names):
        raise InputError(f"[[config]] names must differ, got {names}")
    density = raw.get("density")
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density < 1:
        raise InputError(f"density must be a number in (0, 1), got {density!r}")
    plan = Plan(name=str(raw.get("name", path.stem)), seeds=tuple(seeds), density=float(density),
                rate=raw.get("rate", 0.2), configs=tuple(configs), base=dict(raw.get("base", {})))
    for u in units(plan, Path("check")):  # every run's configuration is checked before the first run starts
        assert isinstance(u.config, RunConfig)
    return plan


def run_config(plan: Plan, cfg: Mapping[str, Any], seed: int, prune: Mapping[str, Any]) -> RunConfig:
    """The base, then the configuration's data/optim tables, then ``prune`` and ``seed``."""
    d = merge_tables(plan.base, {"data": cfg.get("data", {}), "optim": cfg.get("optim", {}), "prune": prune, "seed": seed})
    try:
        return RunConfig.from_dict(d)
    except InputError as exc:
        raise InputError(f"[[config]] {cfg['name']} (seed {seed}): {exc}") from None


def units(plan: Plan, out: Path) -> list[Unit]:
    """Every run of the table in the order they must run: per seed, the sources and dense runs first."""
    todo: list[Unit] = []
    for seed in plan.seeds:
        root = out / f"seed{seed}"
        for c in plan.configs:
            todo.append(Unit(root / f"imp-{c['name']}", run_config(
                plan, c, seed, {"method": "imp", "density": plan.density, "rate": plan.rate}), "source"))
            todo.append(Unit(root / f"dense-{c['name']}", run_config(
                plan, c, seed, {"method": "dense", "density": 1.0}), "dense"))
        for t in plan.configs:
            for s in plan.configs:
                src = str(root / f"imp-{s['name']}")
                for shuffle in (False, True):
                    name = f"{s['name']}-on-{t['name']}" + ("-shuffled" if shuffle else "")
                    todo.append(Unit(root / name, run_config(
                        plan, t, seed, {"method": "transfer", "density": plan.density, "mask_from": src,
                                        "transfer_shuffle": shuffle}), "transfer"))
    return todo


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) every run of the table, then write the table; return the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", nargs="?", default="experiments/transfer.toml", type=Path)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--quick", action="store_true", help="the reduced version ([quick] of the TOML)")
    p.add_argument("--out", type=Path, default=None, help="run directories (default runs/transfer[_quick])")
    p.add_argument("--results", type=Path, default=None,
                   help="output prefix (default experiments/results/transfer[_quick])")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    suffix = "_quick" if args.quick else ""
    out = args.out or Path(f"runs/transfer{suffix}")
    prefix = args.results or Path(f"experiments/results/transfer{suffix}")
    try:
        plan = read_plan(args.config, args.quick)
        todo = units(plan, out)
        started = time.perf_counter()
        trained = 0.0  # every run's own training time, also of runs finished by an earlier invocation
        for i, u in enumerate(todo, 1):
            t0 = time.perf_counter()
            s = train_run(u.config, u.directory, data_dir=args.data_dir, device=args.device)
            trained += float(s.get("wall_time_s", 0.0))
            print(f"[{i}/{len(todo)}] {u.directory}: accuracy {100 * s['test_accuracy']:.2f} %, density "
                  f"{s['density']:.4f}, {time.perf_counter() - t0:.1f} s", flush=True)
        wall = time.perf_counter() - started
        runs = report.transfer_runs([u.directory for u in todo])
        table = report.transfer_table(runs)
    except StrongTicketError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c0 = todo[0].config
    head = (f"# {plan.name}\n\n"
            f"{c0.model.model}; IMP tickets at density {plan.density} (rate {plan.rate} per round, reset to init, "
            f"{c0.prune.scope} magnitude); {c0.optim.epochs} epochs per phase, {c0.data.train_subset or 'all'} "
            f"training / {c0.data.test_subset or 'all'} test images, batch {c0.data.batch_size}; seeds "
            f"{', '.join(map(str, plan.seeds))}. Configurations: "
            + "; ".join(f"{c['name']} = {c['data'].get('dataset')}/{c['optim'].get('optimizer')} "
                        f"lr {c['optim'].get('lr')}" for c in plan.configs)
            + f". Training time of the {len(todo)} runs (each run's own wall time, summed): {trained:.0f} s; "
              f"wall time of this invocation: {wall:.0f} s ({platform.node()}, {args.device}; finished runs are "
              "not retrained).\n\n")
    write_bytes_atomic(Path(f"{prefix}.md"), (head + report.to_markdown(table)).encode())
    write_bytes_atomic(Path(f"{prefix}.json"), json.dumps(
        {"name": plan.name, "seeds": list(plan.seeds), "density": plan.density, "rate": plan.rate,
         "wall_time_s": wall, "training_time_s": trained, "table": table, "runs": runs}, indent=1).encode())
    print(head + report.to_markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
