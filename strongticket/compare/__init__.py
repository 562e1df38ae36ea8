"""Constructed strong tickets beside tickets found by training or search, on one task, measured the same way.

* :mod:`strongticket.compare.config`: the comparison's TOML (task, seeds, constructions, finders), checked;
* :mod:`strongticket.compare.units`: the units of work in one deterministic order, and the slice of a shard;
* :mod:`strongticket.compare.runner`: units -> one result file each (resumable; constructions and finders);
* :mod:`strongticket.compare.table`: results -> the table (mean ± std over seeds) and the figures.

:func:`compare` runs a comparison (or one shard of it) into a directory and writes its report; :func:`merge`
assembles the directories of shards into the report one unsharded run would write; :func:`write_report`
(re)writes the report of any directory of results; :func:`results_page` turns committed results into a
markdown page with the figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from strongticket.compare.config import CompareConfig
from strongticket.compare.runner import (
    MARKER,
    TIMING_FIELDS,
    Runner,
    is_compare_dir,
    machine,
    open_directory,
    read_results,
)
from strongticket.compare.table import aggregate, plot_figures, to_csv, to_markdown
from strongticket.compare.units import plan
from strongticket.errors import InputError
from strongticket.files import check_can_create, read_json_object, write_bytes_atomic, write_json_atomic


def compare(config: CompareConfig, out: str | Path, *, shard: tuple[int, int] | None = None,
            data_dir: str | Path | None = None, device: str = "auto", overwrite: bool = False,
            note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the units of ``config`` (all, or shard ``(i, k)``) into ``out``; write and return its report.

    A rerun of the same command skips finished units and resumes the one a kill interrupted.

    Returns
    -------
    dict
        ``{"out", "units", "done", "rows", "files"}``: the directory, the units this call was responsible
        for, how many of them have results, the table's rows and the report files written.
    """
    out = Path(out)
    open_directory(out, config, shard_spec=shard, overwrite=overwrite)
    runner = Runner(config, out, data_dir=None if data_dir is None else Path(data_dir), device=device, note=note)
    runner.run(shard)
    return write_report(out, config)


def write_report(out: str | Path, config: CompareConfig | None = None) -> dict[str, Any]:
    """Write ``table.md``, ``table.csv``, ``rows.json`` and the figures of the results in ``out``."""
    out = Path(out)
    if config is None:
        config = CompareConfig.from_dict(read_json_object(out / MARKER, InputError)["config"])
    results = read_results(out)
    units = plan(config)
    rows = aggregate(results)
    record = read_json_object(out / MARKER, InputError)
    files = {"table": out / "table.md", "csv": out / "table.csv", "rows": out / "rows.json"}
    done = {r["unit"] for r in results}
    shard_note = f" (shard {record['shard']})" if record.get("shard") else ""
    header = f"# {config.name}\n\nMean ± std over {seeds_line(config, results)}{shard_note}.\n\n"
    write_bytes_atomic(files["table"], (header + to_markdown(rows)).encode())
    write_bytes_atomic(files["csv"], to_csv(rows).encode())
    write_json_atomic(files["rows"], {"name": config.name, "digest": config.digest(), "machine": machine(),
                                      "rows": rows})
    figures = plot_figures(rows, out, config.name) if rows else []
    return {"out": str(out), "units": len(units), "done": len(done), "rows": rows,
            "files": {**{k: str(v) for k, v in files.items()}, "figures": [str(p) for p in figures]}}


def merge(config: CompareConfig, out: str | Path, sources: Sequence[str | Path], *,
          overwrite: bool = False) -> dict[str, Any]:
    """Assemble the result files of shard directories ``sources`` into ``out``; write and return its report.

    Every source must be a comparison directory of the same configuration (its digest); a unit present in two
    sources must agree in every field but :data:`~strongticket.compare.runner.TIMING_FIELDS`. Nothing is
    written before every source has been checked.
    """
    out = Path(out)
    digest = config.digest()
    collected: dict[str, tuple[Path, dict[str, Any]]] = {}
    for src in map(Path, sources):
        if not is_compare_dir(src):
            raise InputError(f"--merge {str(src)!r} is not a comparison directory (no {MARKER})")
        if read_json_object(src / MARKER, InputError).get("digest") != digest:
            raise InputError(f"--merge {str(src)!r} holds a comparison of another configuration (digest differs "
                             "from CONFIG's): only shards of one configuration merge")
        for r in read_results(src):
            prev = collected.get(r["unit"])
            if prev is not None and _deterministic(prev[1]) != _deterministic(r):
                raise InputError(f"unit {r['unit']!r} differs between {str(prev[0])!r} and {str(src)!r}; the shards "
                                 "did not compute the same thing (another torch build or machine?)")
            collected.setdefault(r["unit"], (src, r))
    if out.resolve() in {Path(s).resolve() for s in sources}:
        raise InputError(f"--out {str(out)!r} is also one of the --merge sources; merge into a new directory")
    open_directory(out, config, shard_spec=None, overwrite=overwrite)
    for unit, (_src, r) in sorted(collected.items()):
        write_json_atomic(out / "results" / f"{unit}.json", r)
    return write_report(out, config)


def _deterministic(result: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in result.items() if k not in TIMING_FIELDS}, sort_keys=True)


#: First line of every results page: what marks an existing page as one :func:`results_page` may replace.
PAGE_TITLE = "# Results\n"


def check_page_destination(page: str | Path) -> None:
    """Check, before any work, that ``page`` may be written: missing, or a results page (it starts with
    :data:`PAGE_TITLE`); any other file is the user's and is never replaced.

    Raises
    ------
    InputError
        One line naming ``--page`` when ``page`` is a directory or a file strongticket did not write.
    OutputError
        When ``page`` cannot be created (a parent path is a file, no permission to write in its parent).
    """
    page = Path(page)
    if page.is_dir() or (page.exists() and not page.read_bytes().startswith(PAGE_TITLE.encode())):
        kind = ("a directory" if page.is_dir() else
                f"a file strongticket did not write (it does not start with {PAGE_TITLE.strip()!r})")
        raise InputError(f"--page {str(page)!r} is {kind}; refusing to replace it: choose another path")
    check_can_create(page, what="--page")


def results_page(sources: Sequence[str | Path], page: str | Path, *, figures: str | Path | None = None,
                 command: str = "") -> dict[str, Any]:
    """Write a markdown results page from comparison directories (or copies of their ``compare.json`` and
    ``results/``): per comparison, its table and its three figures (PNG, written beside the page in
    ``figures``, default ``<page dir>/figures``), and the command that regenerates the page.

    An existing ``page`` is replaced only when it is a results page (:func:`check_page_destination`)."""
    page = Path(page)
    check_page_destination(page)
    fig_dir = Path(figures) if figures is not None else page.parent / "figures"
    parts = [PAGE_TITLE,
             "Constructed strong tickets (no training: pruned from a random network to approximate a trained "
             "target) beside tickets found by training or search, on the same task and measured the same way. "
             "Every number is a mean over the seeds listed; wall times are those of the machine that ran the "
             "comparison.\n"]
    if command:
        parts.append(f"Regenerate this page with `{command}`.\n")
    written = []
    for src in map(Path, sources):
        if not is_compare_dir(src):
            raise InputError(f"{str(src)!r} is not a comparison directory (no {MARKER})")
        config = CompareConfig.from_dict(read_json_object(src / MARKER, InputError)["config"])
        results = read_results(src)
        rows = aggregate(results)
        sub = fig_dir / src.name
        sub.mkdir(parents=True, exist_ok=True)
        figs = plot_figures(rows, sub, config.name) if rows else []
        rel = [Path(_relative(p, page.parent)) for p in figs]
        parts.append(f"## {config.name}\n")
        parts.append(f"Seeds {seeds_line(config, results).removeprefix('seeds ')}; results in `{src}`.\n")
        parts += reading(rows)
        parts.append(to_markdown(rows))
        parts += [f"![{p.stem.replace('_', ' ')}]({p.as_posix()})\n" for p in rel]
        written += [str(p) for p in figs]
    write_bytes_atomic(page, "\n".join(parts).encode())
    return {"page": str(page), "figures": written}


def seeds_line(config: CompareConfig, results: Sequence[dict[str, Any]]) -> str:
    """``"seeds 0, 1, 2"`` when every unit of the configuration has its result, else which seeds have results
    and how many units of how many (``"seeds 0, 1 (of 0, 1, 2; 14 of 21 units finished)"``): a table of a
    comparison still running never reads as complete."""
    units = {u.id for u in plan(config)}
    done = {r["unit"] for r in results} & units
    listed = ", ".join(map(str, config.seeds))
    if done == units:
        return f"seeds {listed}"
    have = ", ".join(str(s) for s in config.seeds if any(r.get("seed") == s for r in results))
    return f"seeds {have or 'none'} (of {listed}; {len(done)} of {len(units)} units finished)"


def reading(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Sentences that read the table: what each constructed ticket costs against the dense network (random
    network and ticket size, construction time) and gives (accuracy against its own target, measured,
    adversarial and certified error, no training), and the best found ticket at each density, all computed
    from ``rows``."""
    dense = next((r for r in rows if r["kind"] == "dense"), None)
    out = []
    if dense is not None and dense["accuracy_mean"] is not None:
        out.append(f"- **Dense target**: {dense['accuracy_mean']:.2f} % with {dense['network_params']:,.0f} "
                   f"parameters, trained in {dense['wall_time_s']:.0f} s.")
    for r in rows:
        if r["kind"] != "construct" or r["accuracy_mean"] is None or dense is None:
            continue
        # its own target: the dense network, or a finder's sparse ticket (``target = { find, density }``)
        target = r["target_accuracy"] if r["target_accuracy"] is not None else dense["accuracy_mean"]
        gap = r["accuracy_mean"] - target
        text = (f"- **{r['row']}** (constructed, no training, reproducible from its seed): "
                f"{r['accuracy_mean']:.2f} % ({gap:+.2f} points against its target, {target:.2f} %); it keeps "
                f"{r['ticket_params'] / dense['network_params']:.1f}× the dense network's parameters, cut from a "
                f"random network {r['network_params'] / dense['network_params']:.0f}× its size, built in "
                f"{r['wall_time_s']:.0f} s")
        if r["error_measured"] is not None:
            text += f"; largest output error on the test images {r['error_measured']:.3g}"
        if r.get("error_adversarial") is not None:
            text += f", an adversarial search from 16 test images {r['error_adversarial']:.3g}"
        if r["error_certified"] is not None:
            text += f", certified at most {r['error_certified']:.3g} ({r['certified_norm']})"
        out.append(text + ".")
    found: dict[float, dict[str, Any]] = {}
    for r in rows:
        if r["kind"] == "find" and r["accuracy_mean"] is not None:
            best = found.get(r["requested_density"])
            if best is None or r["accuracy_mean"] > best["accuracy_mean"]:
                found[r["requested_density"]] = r
    for d, r in sorted(found.items(), reverse=True):
        out.append(f"- **Best found ticket at density {d:g}**: {r['row']}, {r['accuracy_mean']:.2f} % with "
                   f"{r['ticket_params']:,.0f} parameters (trained, {r['wall_time_s']:.0f} s).")
    return ["\n".join(out) + "\n"] if out else []


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start)


def copy_results(src: str | Path, dest: str | Path) -> None:
    """Copy a comparison's small files (``compare.json``, ``results/``, the table, rows and figures, no
    checkpoints or tickets) to ``dest``: what a repository commits to regenerate its results page."""
    src, dest = Path(src), Path(dest)
    if not is_compare_dir(src):
        raise InputError(f"{str(src)!r} is not a comparison directory (no {MARKER})")
    if dest.exists() and not is_compare_dir(dest) and any(dest.iterdir()):
        raise InputError(f"--export {str(dest)!r} is a directory that strongticket did not write (no {MARKER}); "
                         "choose another path")
    for name in (MARKER, "table.md", "table.csv", "rows.json"):
        if (src / name).is_file():
            write_bytes_atomic(dest / name, (src / name).read_bytes())
    for f in sorted((src / "results").glob("*.json")):
        write_bytes_atomic(dest / "results" / f.name, f.read_bytes())


__all__ = ["CompareConfig", "check_page_destination", "compare", "copy_results", "merge", "results_page", "seeds_line",
           "write_report"]
