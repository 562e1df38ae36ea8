"""The configuration of a comparison: one task, the constructions and the finders, the seeds.

A comparison is read from a TOML file (``strongticket compare CONFIG.toml``)::

    name = "LeNet-300-100 on MNIST"       # the report's title
    seeds = [0, 1, 2]                      # one target and one random network per seed

    [train]                                # a training run's configuration (``strongticket train --config``):
    [train.data]                           # the dense target of every seed is trained with it, and every
    dataset = "mnist"                      # finder starts from it
    [train.model]
    model = "lenet300100"
    [train.optim]
    epochs = 3

    [pretrain]                             # optional: a dense run per seed (its own data, model, optim)
    data = { dataset = "mnist" }           # whose final weights start the target and every finder
                                           # (model.init_from), as when a pre-trained model is fine-tuned
                                           # and pruned on another task (the Instant Soup protocol)

    [[construct]]                          # a strong ticket constructed from the seed's target (no training)
    method = "pensia"                      # a name of ``strongticket.construct.CONSTRUCTIONS``
    label = "2L min_error"                 # optional: the table's row name
    target = { find = "imp", density = 0.1 }  # optional: approximate that finder's ticket (a sparse
                                           # target, as in Burkholz 2022's Table 1) instead of the dense one
    [construct.options]                    # keyword options of the construction (``--per-weight-eps`` ...)
    per_weight_eps = 0.01

    [[find]]                               # a ticket found by training or search
    method = "imp"                         # a name of ``strongticket.train.methods``
    densities = [0.1, 0.02]
    [find.train]                           # overrides of [train] for this finder only
    prune = { rate = 0.5 }

Every key is checked where the file is read: an unknown key or a value of the wrong type is one
:class:`InputError` naming the key and the allowed keys or values, before anything is written. The
configuration's :meth:`CompareConfig.digest` (a hash of its canonical JSON) marks the output directory, so a
rerun resumes only a comparison of the same configuration, and shards of different configurations never
merge.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongticket.errors import InputError
from strongticket.train.config import RunConfig

TOP_KEYS = ("name", "seeds", "pretrain", "train", "construct", "find")
CONSTRUCT_KEYS = ("method", "label", "options", "target")
TARGET_KEYS = ("find", "density")
FIND_KEYS = ("method", "label", "densities", "train")

#: construction options the comparison sets itself, per unit: a configuration may not set them
RESERVED_OPTIONS = ("seed", "log", "input_shape", "record_target")


@dataclass(frozen=True)
class ConstructEntry:
    """One construction of the comparison.

    Attributes
    ----------
    method : str
        A construction name (``pensia``, ``malach``, ``cnn2l``, ``structured``, ``lplus1``).
    label : str
        The row's name in the table (default: the method and its options).
    options : dict
        Keyword options of the construction (JSON values; ``distribution`` by name).
    target : (str, float) or None
        The ``[[find]]`` label and density whose ticket is the target (a sparse target: its pruned weights stay
        empty in the construction); None: the seed's dense target.
    """

    method: str
    label: str
    options: Mapping[str, Any] = field(default_factory=dict)
    target: tuple[str, float] | None = None


@dataclass(frozen=True)
class FindEntry:
    """One ticket finder of the comparison, run at each of ``densities``.

    Attributes
    ----------
    method : str
        A training method name (``imp``, ``edge-popup``, ``synflow`` ...).
    label : str
        The row's name in the table (default: the method).
    densities : tuple of float
        Fractions of prunable weights kept, each in (0, 1].
    train : dict
        Overrides of the comparison's ``[train]`` tables for this finder (``{"prune": {"rate": 0.5}}``).
    """

    method: str
    label: str
    densities: tuple[float, ...]
    train: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareConfig:
    """A whole comparison (see the module docstring for the TOML form)."""

    name: str
    seeds: tuple[int, ...]
    train: Mapping[str, Any]
    construct: tuple[ConstructEntry, ...] = ()
    find: tuple[FindEntry, ...] = ()
    pretrain: Mapping[str, Any] = field(default_factory=dict)

    def pretrain_run(self, seed: int) -> RunConfig | None:
        """The dense pre-training run of ``seed`` (None when the comparison has no ``[pretrain]``)."""
        if not self.pretrain:
            return None
        return RunConfig.from_dict(_with_seed(merge_tables(self.pretrain, _DENSE), seed))

    def base_run(self, seed: int, init_from: str | None = None) -> RunConfig:
        """The training configuration of the dense target of ``seed`` (method ``dense``), started from the
        finished run ``init_from`` (the seed's pre-training) when given."""
        return RunConfig.from_dict(_with_seed(merge_tables(self.train, merge_tables(_DENSE, _init(init_from))),
                                              seed))

    def find_run(self, entry: FindEntry, density: float, seed: int, init_from: str | None = None) -> RunConfig:
        """The training configuration of finder ``entry`` at ``density`` for ``seed`` (from ``init_from``, the
        seed's pre-training, when given)."""
        over = merge_tables(entry.train, {"prune": {"method": entry.method, "density": density}})
        return RunConfig.from_dict(_with_seed(merge_tables(self.train, merge_tables(over, _init(init_from))), seed))

    def target_finder(self, entry: ConstructEntry) -> tuple[int, float]:
        """The ``[[find]]`` index and density whose ticket ``entry`` approximates (an :class:`InputError` naming
        the labels and densities there are when it names none of them)."""
        label, density = entry.target
        for i, f in enumerate(self.find):
            if f.label == label and any(abs(d - density) <= 1e-12 for d in f.densities):
                return i, next(d for d in f.densities if abs(d - density) <= 1e-12)
        have = [f"{f.label} @ {d:g}" for f in self.find for d in f.densities]
        raise InputError(f"[[construct]] {entry.label!r}: target names no [[find]] run: got {label} @ {density:g}, "
                         f"have {have}")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as canonical JSON-ready data (what :meth:`digest` hashes; ``pretrain`` only when
        given, so that comparisons without one keep the digest they had before the key existed)."""
        d = {"name": self.name, "seeds": list(self.seeds), "train": _plain(self.train),
             "construct": [{"method": c.method, "label": c.label, "options": _plain(c.options),
                            **({} if c.target is None else {"target": {"find": c.target[0], "density": c.target[1]}})}
                           for c in self.construct],
             "find": [{"method": f.method, "label": f.label, "densities": list(f.densities),
                       "train": _plain(f.train)} for f in self.find]}
        if self.pretrain:
            d["pretrain"] = _plain(self.pretrain)
        return d

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict` (16 hex digits): equal configurations only."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "the configuration") -> CompareConfig:
        """Build and check a comparison from parsed TOML; every problem is one :class:`InputError`."""
        if not isinstance(d, Mapping):
            raise InputError(f"{where} must be a table of settings, got {d!r}")
        check_table(d, TOP_KEYS, "the top level")
        name = d.get("name", "comparison")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"name must be a non-empty string, got {name!r}")
        seeds = d.get("seeds", [0])
        if not isinstance(seeds, list) or not seeds or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise InputError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise InputError(f"seeds must not repeat, got {seeds!r}")
        train = d.get("train", {})
        if not isinstance(train, Mapping):
            raise InputError(f"[train] must be a table, got {train!r}")
        if "prune" in train:
            raise InputError("[train] may not hold a [train.prune] table: the target is dense and each [[find]] "
                             "names its method (put method settings in [find.train.prune])")
        if "seed" in train:
            raise InputError("[train] may not set seed: the comparison's seeds = [...] list gives each run its seed")
        pretrain = d.get("pretrain", {})
        if not isinstance(pretrain, Mapping):
            raise InputError(f"[pretrain] must be a table, got {pretrain!r}")
        if "prune" in pretrain or "seed" in pretrain:
            raise InputError("[pretrain] may not set [pretrain.prune] or seed: the pre-training is a dense run "
                             "seeded by the comparison's seeds = [...] list")
        if pretrain and isinstance(train.get("model"), Mapping) and train["model"].get("init_from") is not None:
            raise InputError("[train.model] may not set init_from when [pretrain] is given: every run starts from "
                             "its seed's pre-training")
        if isinstance(train.get("data"), Mapping) and train["data"].get("test_subset") is not None:
            raise InputError("[train.data] may not set test_subset: a comparison measures every row on the whole "
                             "test split, so that rows compare")
        constructs = _entries(d.get("construct", []), "construct")
        finds = _entries(d.get("find", []), "find")
        if not constructs and not finds:
            raise InputError("the configuration names no [[construct]] and no [[find]] entry: nothing to compare")
        config = cls(name=name, seeds=tuple(seeds), train=dict(train), pretrain=dict(pretrain),
                     construct=tuple(_construct_entry(c, i) for i, c in enumerate(constructs)),
                     find=tuple(_find_entry(f, i) for i, f in enumerate(finds)))
        config.check()
        return config

    @classmethod
    def from_toml(cls, path: str | Path) -> CompareConfig:
        """Read and check a comparison from a TOML file."""
        from strongticket.files import read_toml

        data = read_toml(path, "CONFIG")
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(f"CONFIG {str(path)!r}: {exc}") from None

    def check(self) -> None:
        """Check every entry against its registry, before any work: construction names and options, training
        settings of the target and of every finder (types, ranges, method names), distinct labels."""
        from strongticket.construct import check_options
        from strongticket.train.methods import method_entry
        from strongticket.train.run import resolve_config

        try:
            pre = self.pretrain_run(self.seeds[0])
            if pre is not None:
                resolve_config(pre)
        except InputError as exc:
            raise InputError(f"[pretrain]: {exc}") from None
        if pre is not None:
            if pre.model.model != self.base_run(self.seeds[0]).model.model:
                raise InputError(f"[pretrain.model] model must be the one of [train.model] (its weights start "
                                 f"every run), got {pre.model.model!r} and {self.base_run(self.seeds[0]).model.model!r}")
        try:
            resolve_config(self.base_run(self.seeds[0]))
        except InputError as exc:
            raise InputError(f"[train]: {exc}") from None
        labels: set[str] = set()
        for i, c in enumerate(self.construct):
            try:
                check_options(c.method, {**c.options, "seed": 0})
            except InputError as exc:
                raise InputError(f"[[construct]] #{i + 1} ({c.label}): {exc}") from None
            labels = _unique_label(labels, c.label)
            if c.target is not None:
                self.target_finder(c)
        for i, f in enumerate(self.find):
            if self.pretrain and method_entry(f.method).keeps_random_weights:
                raise InputError(f"[[find]] #{i + 1} ({f.label}): {f.method} keeps its random weights (a strong "
                                 "ticket), so it cannot start from the [pretrain] weights; remove it or [pretrain]")
            for density in f.densities:
                try:
                    resolve_config(self.find_run(f, density, self.seeds[0]))
                except InputError as exc:
                    raise InputError(f"[[find]] #{i + 1} ({f.label}): {exc}") from None
            labels = _unique_label(labels, f.label)


# ------------------------------------------------------------------------------------------- parsing helpers


def check_table(d: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    """Return ``d`` if it is a table whose keys are all in ``allowed``; else one :class:`InputError` naming
    ``where``, the first unknown key and the allowed ones. Experiment configurations use it too."""
    if not isinstance(d, Mapping):
        raise InputError(f"{where} must be a table, got {d!r}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r} in {where}; allowed keys: {', '.join(allowed)}")
    return d


def _entries(value: Any, name: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise InputError(f"{name} must be a list of tables ([[{name}]] entries), got {value!r}")
    return value


def _construct_entry(d: Mapping[str, Any], i: int) -> ConstructEntry:
    where = f"[[construct]] #{i + 1}"
    check_table(d, CONSTRUCT_KEYS, where)
    method = d.get("method")
    if not isinstance(method, str):
        raise InputError(f"{where}: method must be a construction name (a string), got {method!r}")
    options = d.get("options", {})
    if not isinstance(options, Mapping):
        raise InputError(f"{where}: options must be a table, got {options!r}")
    reserved = sorted(set(options) & set(RESERVED_OPTIONS))
    if reserved:
        raise InputError(f"{where}: option {reserved[0]!r} is set by the comparison itself (seed from seeds = "
                         "[...], the input shape from the data); remove it")
    label = d.get("label", _default_label(method, options))
    if not isinstance(label, str) or not label.strip():
        raise InputError(f"{where}: label must be a non-empty string, got {label!r}")
    target = d.get("target")
    if target is not None:
        check_table(target, TARGET_KEYS, f"{where} target")
        density = target.get("density")
        if not isinstance(target.get("find"), str) or not isinstance(density, (int, float)) \
                or isinstance(density, bool):
            raise InputError(f"{where}: target must be {{ find = \"<a [[find]] label>\", density = <one of its "
                             f"densities> }}, got {dict(target)!r}")
        target = (target["find"], float(density))
    return ConstructEntry(method=method, label=label, options=dict(options), target=target)


def _find_entry(d: Mapping[str, Any], i: int) -> FindEntry:
    where = f"[[find]] #{i + 1}"
    check_table(d, FIND_KEYS, where)
    method = d.get("method")
    if not isinstance(method, str):
        raise InputError(f"{where}: method must be a training method name (a string), got {method!r}")
    densities = d.get("densities", [1.0] if method == "dense" else None)
    if not isinstance(densities, list) or not densities or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1 for x in densities):
        raise InputError(f"{where} ({method}): densities must be a non-empty list of numbers in (0, 1], "
                         f"got {densities!r}")
    if len(set(densities)) != len(densities):
        raise InputError(f"{where} ({method}): densities must not repeat, got {densities!r}")
    train = d.get("train", {})
    if not isinstance(train, Mapping) or not all(isinstance(v, Mapping) for v in train.values()):
        raise InputError(f"{where} ({method}): train must be a table of tables ([find.train.optim] ...), "
                         f"got {train!r}")
    if "seed" in train:
        raise InputError(f"{where} ({method}): train may not set seed: the comparison's seeds = [...] list does")
    label = d.get("label", method)
    if not isinstance(label, str) or not label.strip():
        raise InputError(f"{where}: label must be a non-empty string, got {label!r}")
    return FindEntry(method=method, label=label, densities=tuple(float(x) for x in densities), train=dict(train))


def _default_label(method: str, options: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{method} ({shown})" if shown else method


def _unique_label(seen: set[str], label: str) -> set[str]:
    if label in seen:
        raise InputError(f"two entries share the label {label!r}: give each [[construct]]/[[find]] its own "
                         "label = \"...\"")
    return seen | {label}


def merge_tables(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``over`` merged in, table by table (``over`` wins; anything that is not a
    table replaces). Experiment configurations use it too."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        out[k] = merge_tables(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) \
            else copy.deepcopy(v)
    return out


_DENSE = {"prune": {"method": "dense", "density": 1.0}}


def _init(init_from: str | None) -> dict[str, Any]:
    return {} if init_from is None else {"model": {"init_from": str(init_from)}}


def _with_seed(d: dict[str, Any], seed: int) -> dict[str, Any]:
    return {**d, "seed": seed}


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: letters, digits, ``.``, ``_`` and ``-`` (``2L min_error`` ->
    ``2L-min_error``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"
