"""The Instant Soup Pruning comparison table (Jaiswal, Liu, Chen, Ding, Wang 2023, "Instant Soup: Cheap Pruning
Ensembles in A Single Pass Can Draw Lottery Tickets from Large Models", ICML, Table 1 shape) on small CNNs.

For each task of the TOML (``experiments/isp_table.toml``): a network is pre-trained dense on the ``source``
dataset (one run, shared by every seed), then fine-tuned and pruned on the ``target`` dataset at each sparsity
by every row (``[[find]]``: a method of ``strongticket train`` with its overrides), for each seed; the dense
fine-tuned network is the first row. Every run is an ordinary ``strongticket train`` run directory under
``--out`` (``model.init_from`` names the pre-trained run), so a rerun of the same command skips finished runs
and resumes the one a kill interrupted.

Outputs (prefix ``--results``, default ``experiments/results/isp_table`` or ``..._quick`` with ``--quick``):

* ``<prefix>.md``: per task, test accuracy (%) mean ± std over the seeds per row and sparsity, the mean
  training steps and training seconds of one run, and the ISP-vs-IMP and Early-Bird checks;
* ``<prefix>.csv``: one line per run (``strongticket.report.runs`` columns plus task, seed, row, steps);
* ``<prefix>_<target>.png``: test accuracy against density per row (``strongticket.report.runs``).

Training steps of a run count every optimiser step it took: phases that continue one schedule (ISP's stages,
Early-Bird's search then training) count once, IMP rounds rewound to step k count from k, ISP's copies and
Lottery Pools' pooling (0 steps, evaluation passes only) are included. Seconds are the run's training wall
time (``wall_time_s``: the sum over its phases, copies included), which on a shared machine is noisy.

Usage: ``python experiments/isp_table.py [experiments/isp_table.toml] --data-dir DATA [--quick]
[--out runs/isp_table] [--results PREFIX] [--device cpu] [--seeds 0,1] [--sparsities '0.8,0.9;0.6,0.7']``
(the last two: a reduced table, named in the results' header) (``DATA`` holds ``mnist/`` and ``fashion-mnist/``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongticket.compare.config import check_table, merge_tables
from strongticket.errors import InputError, StrongTicketError
from strongticket.files import read_toml, write_bytes_atomic
from strongticket.report import runs as report
from strongticket.train.config import RunConfig
from strongticket.train.methods import method_entry
from strongticket.train.run import train_run

TOP_KEYS = ("name", "seeds", "task", "pretrain", "train", "find", "quick")
TASK_KEYS = ("source", "target", "sparsities")
FIND_KEYS = ("method", "label", "train")
QUICK_KEYS = ("seeds", "sparsities", "pretrain", "train", "find")


# ------------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Task:
    """Pre-train on ``source``, fine-tune and prune on ``target`` at ``sparsities``."""

    source: str
    target: str
    sparsities: tuple[float, ...]

    @property
    def name(self) -> str:
        """``source->target``."""
        return f"{self.source}->{self.target}"


@dataclass(frozen=True)
class Row:
    """One row of the table: a method and the overrides of its runs."""

    method: str
    label: str
    train: dict[str, Any]


@dataclass(frozen=True)
class Unit:
    """One training run of the table (a pre-training when ``row`` is None)."""

    task: Task
    row: Row | None
    sparsity: float | None
    seed: int
    directory: Path
    config: RunConfig


@dataclass(frozen=True)
class Table:
    """The checked TOML: title, seeds, tasks, rows and the two base configurations (nested dicts)."""

    name: str
    seeds: tuple[int, ...]
    tasks: tuple[Task, ...]
    rows: tuple[Row, ...]
    pretrain: dict[str, Any]
    train: dict[str, Any]


def _sparsities(v: Any, where: str) -> tuple[float, ...]:
    if (not isinstance(v, list) or not v
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < 1 for s in v)):
        raise InputError(f"{where} must be a non-empty list of sparsities in (0, 1), got {v!r}")
    return tuple(float(s) for s in v)


def read_table(path: Path, quick: bool, seeds: list[int] | None = None,
               sparsities: list[list[float]] | None = None) -> Table:
    """Read and check the TOML (every run configuration is built, so a bad key fails before any training).

    ``seeds`` and ``sparsities`` (one list per task) replace the TOML's (a reduced table: the runs it shares
    with the full one have the same directories and configurations, so a later full run reuses them)."""
    raw = read_toml(path, "config")
    if seeds is not None:
        raw = {**raw, "seeds": seeds}
    if sparsities is not None:
        tasks = raw.get("task")
        if not isinstance(tasks, list) or len(sparsities) != len(tasks):
            raise InputError(f"--sparsities must hold one list per task ({len(tasks) if isinstance(tasks, list) else 0}"
                             f"), got {len(sparsities)}")
        raw = {**raw, "task": [{**t, "sparsities": sp} for t, sp in zip(tasks, sparsities)]}
    check_table(raw, TOP_KEYS, "the table's TOML")
    tasks_raw = raw.get("task")
    if not isinstance(tasks_raw, list) or not tasks_raw:
        raise InputError(f"[[task]] must list at least one task, got {tasks_raw!r}")
    finds = raw.get("find")
    if not isinstance(finds, list) or not finds:
        raise InputError(f"[[find]] must list at least one row, got {finds!r}")
    seeds = raw.get("seeds", [0])
    pretrain, train = raw.get("pretrain", {}), raw.get("train", {})
    quick_raw = check_table(raw.get("quick", {}), QUICK_KEYS, "[quick]") if quick else {}
    if quick:
        seeds = quick_raw.get("seeds", seeds)
        pretrain = merge_tables(pretrain, quick_raw.get("pretrain", {}))
        train = merge_tables(train, quick_raw.get("train", {}))
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise InputError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    tasks = []
    for i, t in enumerate(tasks_raw):
        t = check_table(t, TASK_KEYS, f"[[task]] #{i + 1}")
        if not isinstance(t.get("source"), str) or not isinstance(t.get("target"), str):
            raise InputError(f"[[task]] #{i + 1} needs source and target dataset names, got {dict(t)!r}")
        sp = _sparsities(t.get("sparsities"), f"[[task]] #{i + 1} sparsities")
        if quick and "sparsities" in quick_raw:
            qs = quick_raw["sparsities"]
            if not isinstance(qs, list) or len(qs) != len(tasks_raw):
                raise InputError(f"[quick] sparsities must hold one list per task ({len(tasks_raw)}), got {qs!r}")
            sp = _sparsities(qs[i], f"[quick] sparsities #{i + 1}")
        tasks.append(Task(t["source"], t["target"], sp))
    rows, labels = [], set()
    quick_find = quick_raw.get("find", {}) if quick else {}
    for i, f in enumerate(finds):
        f = check_table(f, FIND_KEYS, f"[[find]] #{i + 1}")
        method = f.get("method")
        if not isinstance(method, str):
            raise InputError(f"[[find]] #{i + 1} needs a method name, got {method!r}")
        method_entry(method)
        label = f.get("label", method)
        if label in labels:
            raise InputError(f"[[find]] #{i + 1} label {label!r} is used twice; give each row its own label")
        labels.add(label)
        rows.append(Row(method, label, merge_tables(f.get("train", {}), quick_find.get(method, {}))))
    table = Table(str(raw.get("name", path.stem)), tuple(seeds), tuple(tasks), tuple(rows), pretrain, train)
    for t in table.tasks:  # every configuration is built now: a bad key fails before any training
        pretrain_config(table, t, Path("."))
        for row in table.rows:
            finetune_config(table, t, row, None if row.method == "dense" else t.sparsities[0], seeds[0], Path("."))
    return table


def pretrain_config(table: Table, task: Task, out: Path) -> RunConfig:
    """The dense pre-training of ``task.source``."""
    d = merge_tables(table.pretrain, {"data": {"dataset": task.source}, "prune": {"method": "dense"}})
    return _config(d, f"[pretrain] of {task.source}")


def finetune_config(table: Table, task: Task, row: Row, sparsity: float | None, seed: int,
                    pretrained: Path) -> RunConfig:
    """The run of ``row`` at ``sparsity`` (None: dense) on ``task.target`` from the pre-trained run."""
    prune: dict[str, Any] = {"method": row.method}
    if sparsity is not None:
        prune["density"] = round(1 - sparsity, 10)
    d = merge_tables(merge_tables(table.train, row.train), {"data": {"dataset": task.target}, "prune": prune,
                                               "model": {"init_from": str(pretrained)}, "seed": seed})
    return _config(d, f"row {row.label!r}")


def _config(d: dict[str, Any], where: str) -> RunConfig:
    try:
        return RunConfig.from_dict(d)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def plan(table: Table, out: Path) -> list[Unit]:
    """Every run of the table in order: each task's pre-training, then its rows by sparsity and seed."""
    units = []
    for task in table.tasks:
        pre = out / f"pretrain-{task.source}"
        units.append(Unit(task, None, None, int(table.pretrain.get("seed", 0)), pre,
                          pretrain_config(table, task, pre)))
        for row in table.rows:
            levels: list[float | None] = [None] if row.method == "dense" else list(task.sparsities)
            for sp in levels:
                for seed in table.seeds:
                    tag = "dense" if sp is None else f"s{round(100 * sp)}"
                    d = out / task.name.replace(">", "") / f"{row.method}-{tag}-seed{seed}"
                    units.append(Unit(task, row, sp, seed, d, finetune_config(table, task, row, sp, seed, pre)))
    return units


# ------------------------------------------------------------------------------------------ measuring


def training_steps(summary: Mapping[str, Any], config: RunConfig) -> int:
    """Optimiser steps a run took, over its phases (see the module doc for what counts)."""
    phases: Mapping[str, Mapping[str, Any]] = summary.get("phases", {})
    method = config.prune.method
    if method == "isp":  # stages and the fine-tuning continue one schedule; the copies count on their own
        return int(phases["finetune"]["step"]) + int(phases.get("isp-copies", {}).get("steps", 0))
    if method == "early-bird":  # the search and the training of the ticket continue one schedule
        return int(phases["train"]["step"])
    k = config.prune.rewind_step if method in ("imp-rewind", "lottery-pools") else 0
    total = 0
    for name, p in phases.items():
        if "steps" in p:
            total += int(p["steps"])
        else:
            total += int(p.get("step", 0)) - (k if name.startswith("round") and name != "round0" else 0)
    return total


def _mean_std(values: list[float], scale: float = 1.0) -> tuple[float, float | None]:
    m = statistics.fmean(values) * scale
    return m, (statistics.stdev(values) * scale if len(values) > 1 else None)


def _fmt(mean: float, std: float | None, digits: int = 2) -> str:
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def report_task(table: Table, task: Task, results: list[tuple[Unit, dict[str, Any]]]) -> tuple[str, list[dict]]:
    """The markdown section of one task and its mean rows for the plot."""
    cols = ["method"] + [f"{round(100 * s)} %" for s in task.sparsities] + ["steps / run", "train s / run"]
    lines, plot_rows = [], []
    acc: dict[tuple[str, float | None], list[float]] = {}
    for unit, s in results:
        if unit.task == task and unit.row is not None:
            acc.setdefault((unit.row.label, unit.sparsity), []).append(s["test_accuracy"])
    md_rows = []
    for row in table.rows:
        mine = [(u, s) for u, s in results if u.task == task and u.row == row]
        if not mine:
            continue
        cells: dict[str, Any] = {"method": row.label}
        for sp in task.sparsities:
            vals = acc.get((row.label, None if row.method == "dense" else sp))
            cells[f"{round(100 * sp)} %"] = _fmt(*_mean_std(vals, 100)) if vals else ""
        cells["steps / run"] = f"{statistics.fmean(training_steps(s, u.config) for u, s in mine):.0f}"
        cells["train s / run"] = f"{statistics.fmean(s['wall_time_s'] for u, s in mine):.1f}"
        md_rows.append(cells)
        for sp in ([None] if row.method == "dense" else task.sparsities):
            vals = acc.get((row.label, sp))
            if vals:
                plot_rows.append({"method": "dense" if sp is None else row.label, "model": mine[0][1]["model"],
                                  "dataset": task.target, "density": 1.0 if sp is None else 1 - sp,
                                  "accuracy": statistics.fmean(vals)})
    lines.append(f"## {task.source} → {task.target} (pre-trained on {task.source})\n")
    lines.append(report.to_markdown(md_rows, cols))
    lines += checks(task, results)
    return "\n".join(lines), plot_rows


def checks(task: Task, results: list[tuple[Unit, dict[str, Any]]]) -> list[str]:
    """The paper's orderings as measured: ISP against IMP (accuracy and cost), Early-Bird's draw epoch."""
    def runs(method: str, sp: float) -> list[dict[str, Any]]:
        return [s for u, s in results if u.task == task and u.row and u.row.method == method and u.sparsity == sp]

    def steps(method: str, sp: float) -> float:
        return statistics.fmean(training_steps(s, u.config) for u, s in results
                                if u.task == task and u.row and u.row.method == method and u.sparsity == sp)

    out = []
    for sp in task.sparsities:
        isp, imp = runs("isp", sp), runs("imp", sp)
        if isp and imp:
            d = 100 * (statistics.fmean(s["test_accuracy"] for s in isp)
                       - statistics.fmean(s["test_accuracy"] for s in imp))
            ratio = steps("isp", sp) / steps("imp", sp)
            out.append(f"- {round(100 * sp)} %: ISP − IMP = {d:+.2f} points at {ratio:.2f} × IMP's training steps")
        eb = runs("early-bird", sp)
        if eb:
            drawn = [s["early_bird"]["drawn_epoch"] for s in eb if s.get("early_bird", {}).get("drawn")]
            out.append(f"- {round(100 * sp)} %: Early-Bird drew its ticket in {len(drawn)} of {len(eb)} runs"
                       + (f", at epoch {sorted(drawn)}" if drawn else "")
                       + f" (search cap {eb[0].get('early_bird', {}).get('search_cap')})")
        lp = runs("lottery-pools", sp)
        if lp:
            gain = [100 * (s["lottery_pools"]["pooled_test_accuracy"] - s["lottery_pools"]["ticket_test_accuracy"])
                    for s in lp]
            acc = sum(len(s["lottery_pools"]["accepted_levels"]) for s in lp)
            out.append(f"- {round(100 * sp)} %: Lottery Pools accepted {acc} interpolation(s) over {len(lp)} runs; "
                       f"pooled − ticket test accuracy {statistics.fmean(gain):+.2f} points")
    return ["", *out, ""] if out else [""]


# ------------------------------------------------------------------------------------------ main


def _numbers(text: str, option: str, kind: type) -> list:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option} must be comma-separated {'integers' if kind is int else 'numbers'}, "
                         f"got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", default="experiments/isp_table.toml", help="the table's TOML")
    ap.add_argument("--data-dir", default=None, help="folder holding mnist/ and fashion-mnist/ "
                                                     "(default: $STRONGTICKET_DATA)")
    ap.add_argument("--quick", action="store_true", help="the reduced table of the TOML's [quick] section")
    ap.add_argument("--out", default=None, help="run directories (default runs/isp_table[_quick])")
    ap.add_argument("--results", default=None,
                    help="prefix of the result files (default experiments/results/isp_table[_quick])")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--seeds", default=None, help="a reduced table: these seeds instead of the TOML's "
                                                  "(comma-separated, e.g. 0,1)")
    ap.add_argument("--sparsities", default=None, help="a reduced table: these sparsities instead of the TOML's, "
                                                       "one comma-separated list per task, tasks separated by ';' "
                                                       "(e.g. '0.8,0.9;0.6,0.7')")
    args = ap.parse_args(argv)
    suffix = "_quick" if args.quick else ""
    out = Path(args.out or f"runs/isp_table{suffix}")
    prefix = Path(args.results or f"experiments/results/isp_table{suffix}")
    try:
        seeds = _numbers(args.seeds, "--seeds", int) if args.seeds else None
        sparsities = ([_numbers(part, "--sparsities", float) for part in args.sparsities.split(";")]
                      if args.sparsities else None)
        table = read_table(Path(args.config), args.quick, seeds, sparsities)
        units = plan(table, out)
        results: list[tuple[Unit, dict[str, Any]]] = []
        pre_seconds: list[float] = []
        started = time.perf_counter()
        for i, unit in enumerate(units, start=1):
            t0 = time.perf_counter()
            s = train_run(unit.config, unit.directory, data_dir=args.data_dir, device=args.device)
            what = "pretrain" if unit.row is None else unit.row.label
            sp = "" if unit.sparsity is None else f" sparsity {unit.sparsity:g}"
            print(f"[{i}/{len(units)}] {unit.task.name} {what}{sp} seed {unit.seed}: test accuracy "
                  f"{100 * s['test_accuracy']:.2f} % ({time.perf_counter() - t0:.1f} s)", flush=True)
            if unit.row is not None:
                results.append((unit, s))
            else:
                pre_seconds.append(s["wall_time_s"])
        sections, csv_rows = [], []
        total_train = sum(s["wall_time_s"] for _, s in results) + sum(pre_seconds)
        for task in table.tasks:
            text, plot_rows = report_task(table, task, results)
            sections.append(text)
            png = prefix.parent / f"{prefix.name}_{task.target}.png"
            report.plot_accuracy_vs_density(plot_rows, png)
            print(f"wrote {png}")
        by_dir = {str(u.directory): (u, s) for u, s in results}
        for r in report.collect([u.directory for u, _ in results]):
            u, s = by_dir[r["run"]]
            csv_rows.append({**r, "task": u.task.name, "row": u.row.label, "seed": u.seed,
                             "steps": training_steps(s, u.config)})
        header = (f"# {table.name}{' (quick)' if args.quick else ''}\n\nTest accuracy (%) on the target dataset, "
                  f"mean ± std over seeds {list(table.seeds)}; steps and training seconds are the mean per run. "
                  f"Config: {args.config}{' --quick' if args.quick else ''}"
                  f"{f' --seeds {args.seeds}' if args.seeds else ''}"
                  f"{f' --sparsities {args.sparsities!r}' if args.sparsities else ''}; "
                  f"{len(units)} runs; their training seconds add up to {total_train:.0f} s (this invocation: "
                  f"{time.perf_counter() - started:.0f} s; finished runs are skipped on a rerun).\n\n")
        prefix.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(prefix.with_suffix(".md"), (header + "\n".join(sections)).encode())
        columns = ["task", "row", "seed", *report.COLUMNS, "steps"]
        write_bytes_atomic(prefix.with_suffix(".csv"), report.to_csv(csv_rows, columns).encode())
        print(header + "\n".join(sections))
        print(f"wrote {prefix.with_suffix('.md')} and {prefix.with_suffix('.csv')}")
    except StrongTicketError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
