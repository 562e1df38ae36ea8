"""The units of work of a comparison, in one deterministic order, and the slice a shard runs.

A *unit* is one (row, setting, seed): the dense target of a seed, one construction on that target, or one
finder at one density. Units are what a run directory records one result file for, what a kill loses at most
one of, and what shards split: ``--shard i/k`` runs the units whose position in :func:`plan` is congruent to
``i - 1`` modulo ``k``, so ``k`` processes (a job array, several machines) cover every unit exactly once with
no coordination, and their result files merge by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongticket.compare.config import CompareConfig, slug
from strongticket.errors import InputError

KINDS = ("dense", "construct", "find")


@dataclass(frozen=True)
class Unit:
    """One unit of work.

    Attributes
    ----------
    id : str
        Its name, unique in the comparison and safe as a file name (``find-imp-d0.1-s2``).
    kind : str
        ``dense`` (the seed's trained target), ``construct`` or ``find``.
    label : str
        The table row it belongs to.
    method : str
        The construction or training method.
    seed : int
        The seed of its target, random network and training.
    density : float or None
        The finder's requested density (None for the others).
    index : int
        Position of its entry in the configuration's ``[[construct]]`` or ``[[find]]`` list (0 for dense).
    """

    id: str
    kind: str
    label: str
    method: str
    seed: int
    density: float | None = None
    index: int = 0


def find_unit_id(label: str, density: float, seed: int) -> str:
    """The name of the unit (and of the training run under ``work/``) of finder ``label`` at ``density``."""
    return f"find-{slug(label)}-d{density:g}-s{seed}"


def plan(config: CompareConfig) -> list[Unit]:
    """Every unit of ``config`` in the canonical order: for each seed, its dense target, then its
    constructions, then every finder at every density."""
    units: list[Unit] = []
    for seed in config.seeds:
        units.append(Unit(id=f"dense-s{seed}", kind="dense", label="dense target", method="dense", seed=seed,
                          density=1.0))
        for i, c in enumerate(config.construct):
            units.append(Unit(id=f"construct-{slug(c.label)}-s{seed}", kind="construct", label=c.label,
                              method=c.method, seed=seed, index=i))
        for i, f in enumerate(config.find):
            for d in f.densities:
                units.append(Unit(id=find_unit_id(f.label, d, seed), kind="find", label=f.label,
                                  method=f.method, seed=seed, density=d, index=i))
    ids = [u.id for u in units]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"two entries give the same unit name {dup!r} (labels that differ only in punctuation); "
                         "give them labels that differ in letters or digits")
    return units


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/k"`` -> ``(i, k)`` with ``1 <= i <= k``; anything else is an :class:`InputError`."""
    parts = text.split("/") if isinstance(text, str) else []
    try:
        i, k = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"--shard must be I/K with integers 1 <= I <= K (e.g. 2/3), got {text!r}") from None
    if not 1 <= i <= k:
        raise InputError(f"--shard I/K needs 1 <= I <= K, got {text!r}")
    return i, k


def shard(units: list[Unit], i: int, k: int) -> list[Unit]:
    """The units shard ``i`` of ``k`` runs: positions congruent to ``i - 1`` modulo ``k``."""
    return [u for n, u in enumerate(units) if n % k == i - 1]
