"""A 2L construction in slices: ``--shard I/K`` runs a deterministic slice of its work units; a merge of the K
slices is the ticket of one unsharded run, bit for bit.

The one 2L engine (:mod:`strongticket.construct.engine`) works a construction in *units*: runs of rows of one
layer's random second layer, with every subset-sum instance they serve (:func:`engine.plan`; the instances of a
unit need only its rows and the layer's first-layer diagonal). The plan is a function of the construction's
configuration only, so ``K`` processes (a job array, ``torchrun``, several machines) each run the units whose
position in the plan is congruent to ``I - 1`` modulo ``K`` (the rule of ``strongticket compare --shard``),
with no coordination, and their directories merge by file.

Slice directory (written by :func:`run_shard`)
----------------------------------------------
``shard.json``
    ``format`` (:data:`FORMAT`), ``format_version``, ``slice`` ``[I, K]``, ``units`` (the ids this slice
    holds), ``configuration`` (construction name, its options, the target's spec, fingerprint and parameter
    names, the plan of every unit, the unit size and the strongticket version) and its ``digest`` (sha256 of
    the configuration's canonical JSON): slices merge only when their digests agree.
``target.safetensors``
    The target's weights under the spec's names: a slice directory is all a merge needs.
``units/<unit>.safetensors``
    One per finished unit, written atomically: its rows of the second layer's mask, the hidden neurons it
    keeps, its per-weight errors and counts; its record (statuses, retries, misses, seconds) as JSON in the
    file's metadata.

A rerun of a slice into its directory skips the units already there (a killed slice resumes); another
configuration or slice there is refused (``overwrite`` replaces a slice directory, never anything else).
:func:`merge` checks that the directories are the ``K`` slices of one configuration, each finished, rebuilds
the plan from the recorded configuration with this code (a version whose plan differs is refused), merges the
units in plan order (:class:`engine.Merger`) and makes the ticket as the construction would have
(``docs/formats.md``, "Construction slice directory").
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from strongticket import __version__
from strongticket.construct import engine
from strongticket.errors import InputError
from strongticket.files import (
    check_writable_directory,
    has_format,
    read_json_object,
    save_arrays_atomic,
    save_tensors_atomic,
    write_json_atomic,
)
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import NetSpec
from strongticket.nets.trace import TracedNet
from strongticket.ticket import Ticket, check_ticket_destination, fingerprint

FORMAT = "strongticket-construct-shard"
FORMAT_VERSION = 1
SHARD_JSON = "shard.json"
TARGET_FILE = "target.safetensors"
UNITS_DIR = "units"


@dataclass(frozen=True)
class ShardReport:
    """What :func:`run_shard` did.

    Attributes
    ----------
    out : str
        The slice directory.
    slice : (int, int)
        ``(I, K)``.
    units : int
        Units this slice holds (of ``total``).
    ran, skipped : int
        Units solved now, and units found finished in ``out`` (a resumed slice).
    total : int
        Units in the whole plan.
    digest : str
        The configuration's digest.
    seconds : float
        Wall time of this call.
    """

    out: str
    slice: tuple[int, int]
    units: int
    ran: int
    skipped: int
    total: int
    digest: str
    seconds: float


def check_slice(index: Any, count: Any) -> tuple[int, int]:
    """``(I, K)`` as integers with ``1 <= I <= K``; an :class:`InputError` naming ``--shard`` otherwise."""
    ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (index, count))
    if not ok or not 1 <= int(index) <= int(count):
        raise InputError(f"--shard I/K needs integers 1 <= I <= K, got {index!r}/{count!r}")
    return int(index), int(count)


def slice_units(units: Sequence[engine.Unit], index: int, count: int) -> list[engine.Unit]:
    """The units slice ``index`` of ``count`` runs: positions congruent to ``index - 1`` modulo ``count``."""
    return [u for n, u in enumerate(units) if n % count == index - 1]


def _encode(value: Any) -> Any:
    if isinstance(value, WeightDistribution):
        return {"distribution": value.to_dict()}
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InputError(f"a sharded construction records its options as JSON; got a {type(value).__name__}")


def encode_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The construction's options as JSON (``log`` dropped, the law as its dict)."""
    return {k: _encode(v) for k, v in sorted(options.items()) if k != "log" and v is not None}


def decode_options(data: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_options` (``input_shape`` back to a tuple)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and set(value) == {"distribution"}:
            value = WeightDistribution.from_dict(value["distribution"])
        elif key == "input_shape" and isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out


def configuration(method: str, options: Mapping[str, Any], prepared: engine.Prepared) -> dict[str, Any]:
    """Everything the slices of one construction share: method, options, target, plan, unit size, version."""
    traced = prepared.traced
    return {
        "method": method,
        "options": encode_options(options),
        "target": {"spec": traced.spec.to_dict(), "fingerprint": fingerprint(traced.state),
                   "names": list(traced.state), "source_names": dict(traced.source_names)},
        "plan": [[u.layer, u.part, u.rows[0], u.rows[1]] for u in prepared.units],
        "unit_elements": engine.UNIT_ELEMENTS,
        "strongticket": __version__,
    }


def digest_of(config: Mapping[str, Any]) -> str:
    """sha256 of the configuration's canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _is_shard_json(path: Path) -> bool:
    return has_format(path, FORMAT)


def check_shardable(method: str) -> Any:
    """The registry entry of ``method`` if it runs in slices (has a ``prepare``); an :class:`InputError` otherwise."""
    from strongticket.construct import CONSTRUCTIONS, construction

    entry = construction(method)
    if entry.prepare is None:
        users = [c.name for c in CONSTRUCTIONS.values() if c.prepare is not None]
        raise InputError(f"--shard does not apply to --method {method}: only the constructions on the one 2L "
                         f"engine run in slices (--method {', '.join(users)})")
    return entry


def check_writable_shard(out: str | Path) -> None:
    """Check, before any work, that ``out`` may be a slice directory: missing, empty or a slice directory (which
    :func:`run_shard` then resumes or, with ``overwrite``, replaces); anything else is an :class:`InputError`."""
    check_writable_directory(out, overwrite=True, marker=SHARD_JSON, what="OUT", is_marker=_is_shard_json)


def run_shard(method: str, target: Any, options: Mapping[str, Any], index: int, count: int, out: str | Path, *,
              overwrite: bool = False, log: Callable[[str], None] | None = None) -> ShardReport:
    """Run slice ``index`` of ``count`` of construction ``method`` on ``target`` into the directory ``out``.

    Parameters
    ----------
    method : str
        A construction of :data:`strongticket.construct.CONSTRUCTIONS` with a ``prepare`` (pensia, malach, cnn2l).
    target : nn.Module or TracedNet
    options : mapping
        Its options, as for :func:`strongticket.construct.build` (checked by
        :func:`~strongticket.construct.check_options`).
    index, count : int
        ``I`` and ``K``, ``1 <= I <= K``.
    out : path
        The slice directory: missing, empty, or this slice of this configuration (then finished units are
        skipped); ``overwrite`` replaces a slice directory of another configuration or slice.
    log : callable, optional
        Progress lines.

    Raises
    ------
    InputError
        A bad slice, a construction that does not run in slices, an option it refuses, or an ``out`` that
        holds something else (nothing is written then).
    """
    from strongticket.construct import check_options

    start = time.perf_counter()
    say = log or (lambda _msg: None)
    index, count = check_slice(index, count)
    check_shardable(method)
    entry = check_options(method, {k: v for k, v in options.items() if k != "log"})
    out = Path(out)
    check_writable_shard(out)
    prepared = entry.prepare(target, **options)
    config = configuration(method, options, prepared)
    digest = digest_of(config)
    units = prepared.units
    mine = slice_units(units, index, count)
    meta_path = out / SHARD_JSON
    if meta_path.is_file():
        old = read_json_object(meta_path, InputError)
        same = old.get("digest") == digest and old.get("slice") == [index, count]
        if not same and not overwrite:
            raise InputError(f"OUT {str(out)!r} holds slice {_slice_text(old)} of another construction or slice "
                             f"than {index}/{count} of this one; pass --overwrite to replace it, or choose "
                             f"another path")
        if not same:
            shutil.rmtree(out)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "slice": [index, count], "digest": digest,
            "units": [u.id for u in mine], "configuration": config,
            "written_by": {"strongticket": __version__, "torch": torch.__version__,
                           "python": platform.python_version()}}
    if not meta_path.is_file():
        save_tensors_atomic(out / TARGET_FILE, dict(prepared.traced.state), metadata={"format": FORMAT},
                            what="OUT")
        write_json_atomic(meta_path, meta, what="OUT")  # last: marks a directory whose target is in place
    done = {u.id for u in mine if (out / UNITS_DIR / f"{u.id}.safetensors").is_file()}
    todo = [u for u in mine if u.id not in done]
    say(f"slice {index}/{count}: {len(mine)} of {len(units)} units, {len(done)} already done")
    for res in engine.run_units(prepared.jobs, prepared.chooser, todo, **engine.vars_of(prepared.settings)):
        save_unit(out / UNITS_DIR / f"{res.unit.id}.safetensors", res, digest)
        say(f"unit {res.unit.id} done ({res.seconds['generate'] + res.seconds['solve']:.1f} s)")
    return ShardReport(out=str(out), slice=(index, count), units=len(mine), ran=len(todo), skipped=len(done),
                       total=len(units), digest=digest, seconds=round(time.perf_counter() - start, 3))


def _slice_text(meta: Mapping[str, Any]) -> str:
    s = meta.get("slice")
    return f"{s[0]}/{s[1]}" if isinstance(s, list) and len(s) == 2 else "?"


def save_unit(path: Path, res: engine.UnitResult, digest: str) -> None:
    """One unit's result as a safetensors file (arrays) with its record as JSON metadata, atomically."""
    record = {"unit": [res.unit.layer, res.unit.part, res.unit.rows[0], res.unit.rows[1]], "short": res.short,
              "status": res.status, "subset_sizes": res.subset_sizes, "retried_count": res.retried_count,
              "recovered": res.recovered, "misses": res.misses, "miss_reasons": res.miss_reasons,
              "seconds": res.seconds}
    arrays = {"mask2": res.mask2, "used": res.used, "errors_pos": res.errors_pos, "errors_neg": res.errors_neg,
              "counts": np.asarray(res.counts, dtype=np.int64), "retried": np.asarray(res.retried, dtype=np.int64)}
    save_arrays_atomic(path, arrays, metadata={"format": FORMAT, "digest": digest,
                                               "record": json.dumps(record, allow_nan=False)})


def load_unit(path: Path, unit: engine.Unit, digest: str) -> engine.UnitResult:
    """A unit file back as its :class:`engine.UnitResult`; a damaged or foreign file is an :class:`InputError`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}
        record = json.loads(meta.get("record", ""))
    except (OSError, SafetensorError, ValueError) as exc:
        raise InputError(f"--merge: unit file {str(path)!r} cannot be read: {exc}") from None
    if meta.get("digest") != digest or record.get("unit") != [unit.layer, unit.part, unit.rows[0], unit.rows[1]]:
        raise InputError(f"--merge: unit file {str(path)!r} belongs to another construction or unit")
    return engine.UnitResult(
        unit=unit, mask2=arrays["mask2"], used=arrays["used"], errors_pos=arrays["errors_pos"],
        errors_neg=arrays["errors_neg"], counts=arrays["counts"], short=record["short"], status=record["status"],
        subset_sizes=int(record["subset_sizes"]), retried=arrays["retried"],
        retried_count=int(record["retried_count"]), recovered=int(record["recovered"]), misses=record["misses"],
        miss_reasons=record["miss_reasons"], seconds=record["seconds"])


def _read_meta(directory: Path) -> dict[str, Any]:
    where = str(directory)
    path = directory / SHARD_JSON
    if not path.is_file():
        raise InputError(f"--merge: {where!r} is not a construction slice directory ({SHARD_JSON} is missing)")
    meta = read_json_object(path, InputError)
    if meta.get("format") != FORMAT:
        raise InputError(f"--merge: {where!r} is not a construction slice directory ({SHARD_JSON} has format "
                         f"{meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"--merge: {where!r} has slice format version {meta.get('format_version')!r}; this "
                         f"strongticket {__version__} reads version {FORMAT_VERSION}")
    for key in ("slice", "digest", "units", "configuration"):
        if key not in meta:
            raise InputError(f"--merge: {SHARD_JSON} in {where!r} has no {key!r}")
    return meta


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if "options" in keys:
        oa, ob = a.get("options", {}), b.get("options", {})
        opts = [k for k in sorted(set(oa) | set(ob)) if oa.get(k) != ob.get(k)]
        keys[keys.index("options")] = "options " + ", ".join(f"{k} ({oa.get(k)!r} vs {ob.get(k)!r})" for k in opts)
    return "; ".join(keys) or "digest"


def merge(directories: Sequence[str | Path], out: str | Path, *, overwrite: bool = False,
          include_weights: bool = False, log: Callable[[str], None] | None = None) -> Ticket:
    """Assemble the ``K`` slice directories of one construction into the ticket directory ``out``.

    The ticket equals the one an unsharded run writes, bit for bit (masks, per-weight errors, target record,
    provenance), except the provenance's seconds.

    Raises
    ------
    InputError
        Nothing to merge, a directory that is not a slice, slices of different configurations or splits, a slice
        missing, given twice or unfinished, a plan this code does not reproduce; ``out`` not writable (checked
        first). Nothing is written then.
    InfeasibleError
        ``strict`` and some weight above its tolerance (as the unsharded construction).
    """
    say = log or (lambda _msg: None)
    check_ticket_destination(out, overwrite=overwrite, what="OUT")
    dirs = [Path(d) for d in directories]
    if not dirs:
        raise InputError("--merge needs the directory of every slice, got none")
    metas = [_read_meta(d) for d in dirs]
    first, d0 = metas[0], dirs[0]
    for d, m in zip(dirs[1:], metas[1:]):
        if m["digest"] != first["digest"]:
            raise InputError(f"--merge: {str(d)!r} holds a slice of another construction than {str(d0)!r} "
                             f"(differs in {_differences(m['configuration'], first['configuration'])}): merge the "
                             f"slices of one construction only")
        if m["slice"][1] != first["slice"][1]:
            raise InputError(f"--merge: {str(d)!r} is slice {_slice_text(m)} but {str(d0)!r} is "
                             f"{_slice_text(first)}: merge the slices of one split I/K")
    count = int(first["slice"][1])
    seen: dict[int, Path] = {}
    for d, m in zip(dirs, metas):
        i = int(m["slice"][0])
        if i in seen:
            raise InputError(f"--merge: slice {i}/{count} is given twice ({str(seen[i])!r} and {str(d)!r})")
        seen[i] = d
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        raise InputError(f"--merge: slice(s) {', '.join(f'{i}/{count}' for i in missing)} missing (given "
                         f"{', '.join(f'{i}/{count}' for i in sorted(seen))}): pass the directory of every slice")
    owner: dict[str, Path] = {}
    for d, m in zip(dirs, metas):
        absent = [uid for uid in m["units"] if not (d / UNITS_DIR / f"{uid}.safetensors").is_file()]
        if absent:
            raise InputError(f"--merge: {str(d)!r} (slice {_slice_text(m)}) is unfinished: {len(absent)} of its "
                             f"{len(m['units'])} units have no result; rerun its command to finish it")
        owner.update({uid: d for uid in m["units"]})
    config = first["configuration"]
    traced = _read_target(d0, config)
    options = decode_options(config["options"])
    entry = check_shardable(config["method"])
    if "log" in entry.options:
        options["log"] = say
    prepared = entry.prepare(traced, **options)
    if digest_of(configuration(config["method"], options, prepared)) != first["digest"]:
        raise InputError(f"--merge: the slices were planned by strongticket {config.get('strongticket')!r} with "
                         f"another plan than this strongticket {__version__} makes: rerun the slices with this "
                         f"version")
    units = prepared.units
    if set(owner) != {u.id for u in units}:
        raise InputError("--merge: the slices' units do not cover the plan exactly: rerun the slices")
    s = prepared.settings
    merger = engine.Merger(prepared.jobs, units, per_weight_eps=s.per_weight_eps, samples=s.samples,
                           block_size=s.block_size, log=say)
    for unit in units:
        merger.add(load_unit(owner[unit.id] / UNITS_DIR / f"{unit.id}.safetensors", unit, first["digest"]))
    ticket = prepared.finish(merger.result())
    ticket.save(out, include_weights=include_weights, overwrite=overwrite, what="OUT")
    return ticket


def _read_target(directory: Path, config: Mapping[str, Any]) -> TracedNet:
    """The target recorded in a slice directory, checked against the configuration's fingerprint."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    target = config["target"]
    try:
        loaded = load_file(str(directory / TARGET_FILE))
        state = {name: loaded[name] for name in target["names"]}
        spec = NetSpec.from_dict(target["spec"])
    except (OSError, SafetensorError, KeyError, ValueError, InputError) as exc:
        raise InputError(f"--merge: the target in {str(directory)!r} cannot be read: {exc}") from None
    if fingerprint(state) != target["fingerprint"]:
        raise InputError(f"--merge: {TARGET_FILE} in {str(directory)!r} does not match its configuration's "
                         f"fingerprint (damaged or replaced)")
    return TracedNet(spec=spec, state=state, source_names=dict(target["source_names"]))


__all__ = ["FORMAT", "FORMAT_VERSION", "ShardReport", "check_shardable", "check_slice", "check_writable_shard",
           "configuration", "decode_options", "digest_of", "encode_options", "load_unit", "merge", "run_shard",
           "save_unit", "slice_units"]
