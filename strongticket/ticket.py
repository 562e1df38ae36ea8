"""``Ticket``: a random network (spec + distribution + seed) and a bool mask per parameter.

A strong ticket only prunes: its surviving weights are, bit for bit, the random weights regenerated from the
seed (:mod:`strongticket.nets.distributions`), and its pruned weights are exactly zero.

Ticket directory (format version :data:`FORMAT_VERSION`)
---------------------------------------------------------
``ticket.json``
    ``format`` (``"strongticket-ticket"``), ``format_version``, the random ``spec`` (every layer's type,
    shapes, stride, padding, activation), ``distribution`` (law, ``scale`` and optional per-parameter
    ``tensor_scales``; absent means factor 1, as in tickets written before they existed), ``seed``,
    ``provenance`` (method, eps, solver, target fingerprint, versions, ...) and ``files``: the sha256 of
    every other file. Its JSON Schema ships with the package (``strongticket/schemas/ticket.schema.json``,
    :func:`strongticket.schemas.load_schema`; described in docs/formats.md): unknown keys are refused
    everywhere but in ``provenance``.
``masks.safetensors``
    One bool tensor per parameter of the spec, named like the ``state_dict`` key (``layers.3.weight``).
``provenance.safetensors`` (optional)
    Arrays that belong to the provenance but are too big for JSON: the target's weights (``target.*``, so
    that ``strongticket verify TICKET`` needs nothing else) and per-weight errors (``errors.*``).
``weights.safetensors`` (optional)
    The random weights themselves, for tools that cannot regenerate them; :meth:`Ticket.load` checks them
    against the regenerated ones.

Loading reads only JSON and safetensors (never pickle), and every problem (missing file, checksum, other
format version, a ``ticket.json`` that breaks the schema, wrong names, shapes or dtypes) raises a one-line
:class:`~strongticket.errors.TicketFormatError` naming the key or file: ``ticket.json in 't': missing key 'seed'``.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from strongticket import __version__
from strongticket.errors import InputError, TicketFormatError
from strongticket.files import (
    atomic_directory,
    check_writable_directory,
    has_format,
    read_json_object,
    save_tensors_atomic,
    sha256_file,
    write_json_atomic,
)
from strongticket.nets.distributions import WeightDistribution, check_seed
from strongticket.nets.spec import NetSpec, SpecNet
from strongticket.nets.trace import TracedNet
from strongticket.schemas import first_error

FORMAT = "strongticket-ticket"
FORMAT_VERSION = 1
TICKET_JSON = "ticket.json"
MASKS_FILE = "masks.safetensors"
WEIGHTS_FILE = "weights.safetensors"
PROVENANCE_FILE = "provenance.safetensors"


def _check_masks(spec: NetSpec, masks: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    shapes = spec.parameter_shapes()
    missing = [n for n in shapes if n not in masks]
    extra = [n for n in masks if n not in shapes]
    if missing or extra:
        raise InputError(f"masks must name exactly the spec's parameters {list(shapes)}; "
                         f"missing {missing}, unexpected {extra}")
    out = {}
    for name, shape in shapes.items():
        m = torch.as_tensor(masks[name])
        if m.dtype != torch.bool:
            raise InputError(f"mask {name!r} must be a bool tensor, got dtype {m.dtype}")
        if tuple(m.shape) != shape:
            raise InputError(f"mask {name!r} must have shape {shape}, got {tuple(m.shape)}")
        out[name] = m.detach().cpu().contiguous()
    return out


@dataclass(frozen=True, eq=False)
class Ticket:
    """A pruned random network.

    Attributes
    ----------
    spec : NetSpec
        The random network's architecture.
    distribution : WeightDistribution
        The law of its weights, with optional per-parameter factors (``tensor_scales``, names of ``spec``).
    seed : int
        Seed of the weights (one generator per parameter, seeded by (seed, name)).
    masks : dict of str to bool tensor
        One mask per parameter of ``spec``, with that parameter's shape: True keeps the weight.
    provenance : dict
        JSON-able: how the ticket was made (method, eps, widths, solver, per-layer error summaries, target
        fingerprint, versions).
    arrays : dict of str to tensor
        Provenance too big for JSON (target weights ``target.*``, per-weight errors ``errors.*``).
    """

    spec: NetSpec
    distribution: WeightDistribution
    seed: int
    masks: dict[str, torch.Tensor]
    provenance: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, NetSpec):
            raise InputError(f"spec must be a NetSpec, got {type(self.spec).__name__}")
        if not isinstance(self.distribution, WeightDistribution):
            raise InputError(f"distribution must be a WeightDistribution, got {type(self.distribution).__name__}")
        object.__setattr__(self, "seed", check_seed(self.seed))
        object.__setattr__(self, "masks", _check_masks(self.spec, self.masks))
        unknown = [n for n, _ in self.distribution.tensor_scales if n not in self.masks]
        if unknown:  # a factor for no parameter would be silently ignored on regeneration
            raise InputError(f"distribution tensor_scales name {unknown} that are not parameters of the spec "
                             f"{list(self.masks)}")
        try:
            json.dumps(self.provenance, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"provenance must be JSON-able (finite numbers, str keys): {exc}") from None
        object.__setattr__(self, "arrays", {k: torch.as_tensor(v).detach().cpu().contiguous()
                                            for k, v in self.arrays.items()})

    # ----- weights and modules ---------------------------------------------------------------
    def random_weights(self, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        """The random network's weights regenerated from the seed (float32, CPU), all or only ``names``."""
        return self.distribution.generate(self.spec, self.seed, names)

    def state_dict(self, weights: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The ticket's weights as a plain ``state_dict``: random weights where kept, exactly 0.0 elsewhere."""
        weights = self.random_weights() if weights is None else weights
        return {n: torch.where(m, weights[n], torch.zeros((), dtype=weights[n].dtype)) for n, m in self.masks.items()}

    def to_module(self, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                  weights: Mapping[str, torch.Tensor] | None = None) -> SpecNet:
        """An ``nn.Module`` (in eval mode) whose kept weights are the regenerated random weights and pruned ones 0.

        The weights are regenerated in float32 on CPU and only then cast to ``dtype`` and moved to ``device``
        (float32 -> float64 is exact).
        """
        module = self.spec.build(dtype=dtype)
        module.load_state_dict({k: v.to(dtype) for k, v in self.state_dict(weights).items()})
        return module.to(device).eval()

    def to_torch_prune(self, module: nn.Module | None = None) -> nn.Module:
        """The ticket in the ``torch.nn.utils.prune`` convention: ``weight_orig`` (random) + ``weight_mask``.

        ``module`` defaults to ``spec.build()``; its parameters are overwritten with the random weights.
        """
        from torch.nn.utils import prune

        module = self.spec.build() if module is None else module
        weights = self.random_weights()
        with torch.no_grad():
            for name, mask in self.masks.items():
                sub, attr = _submodule(module, name)
                getattr(sub, attr).copy_(weights[name])
                prune.custom_from_mask(sub, attr, mask.to(getattr(sub, attr).dtype))
        return module.eval()

    def compact(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        """A physically smaller dense module with the ticket's function (to float rounding), in eval mode.

        For tickets of 1x1 + kxk pairs with univariate 1x1 layers (the structured and cnn2l constructions on
        Conv2d targets): pruned intermediate channels are removed and the 1x1 layer becomes a grouped
        convolution on the gathered input channels (:func:`strongticket.compact.compact_module`).

        Raises
        ------
        InputError
            For a network the compaction does not cover (named layer).
        """
        from strongticket.compact import compact_module  # compact builds on Ticket: imported here

        return compact_module(self, dtype=dtype)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], spec: NetSpec, distribution: WeightDistribution,
                        seed: int, provenance: dict[str, Any] | None = None) -> Ticket:
        """Rebuild a ticket from a ``state_dict``: plain (pruned weights 0) or ``weight_orig`` + ``weight_mask``.

        Raises
        ------
        InputError
            When a kept weight differs from the random weight regenerated from ``(seed, name)``: the state is
            then not a subnetwork of that random network.
        """
        weights = distribution.generate(spec, seed)
        masks = {}
        for name, w in weights.items():
            if f"{name}_mask" in state:
                mask = state[f"{name}_mask"].to(torch.bool)
                value = state.get(f"{name}_orig", weights[name])
            elif name in state:
                value = state[name]
                mask = value != 0
            else:
                raise InputError(f"state_dict has no entry for parameter {name!r} (nor {name}_orig/{name}_mask)")
            if tuple(mask.shape) != tuple(w.shape):
                raise InputError(f"{name!r} must have shape {tuple(w.shape)}, got {tuple(mask.shape)}")
            value = value.detach().cpu().to(torch.float32)
            bad = int((mask & (value != w)).sum())
            if bad:
                raise InputError(f"{bad} kept entries of {name!r} differ from the random weights of seed {seed}: "
                                 "not a subnetwork of this random network")
            masks[name] = mask.cpu()
        return cls(spec, distribution, seed, masks, provenance or {})

    # ----- counts ----------------------------------------------------------------------------
    @property
    def num_params(self) -> int:
        """Parameters of the random network (all of them, kept or not)."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def num_kept(self) -> int:
        """Parameters that survive the masks."""
        return sum(int(m.sum()) for m in self.masks.values())

    @property
    def density(self) -> float:
        """Kept / total parameters."""
        return self.num_kept / self.num_params if self.num_params else 0.0

    @property
    def sparsity(self) -> float:
        """1 - density."""
        return 1.0 - self.density

    def density_table(self) -> list[dict[str, Any]]:
        """One row per parameter plus a ``total`` row: name, shape, params, kept, density, sparsity."""
        rows = []
        for name, m in self.masks.items():
            kept, total = int(m.sum()), m.numel()
            rows.append({"name": name, "shape": list(m.shape), "params": total, "kept": kept,
                         "density": kept / total if total else 0.0, "sparsity": 1 - kept / total if total else 1.0})
        rows.append({"name": "total", "shape": [], "params": self.num_params, "kept": self.num_kept,
                     "density": self.density, "sparsity": self.sparsity})
        return rows

    def equals(self, other: Ticket) -> bool:
        """True when both tickets have the same spec, law, seed, provenance, masks and arrays (bit for bit)."""
        return (isinstance(other, Ticket) and self.spec == other.spec and self.distribution == other.distribution
                and self.seed == other.seed and self.provenance == other.provenance
                and self.masks.keys() == other.masks.keys()
                and all(torch.equal(self.masks[k], other.masks[k]) for k in self.masks)
                and self.arrays.keys() == other.arrays.keys()
                and all(self.arrays[k].dtype == other.arrays[k].dtype and torch.equal(self.arrays[k], other.arrays[k])
                        for k in self.arrays))

    # ----- files -----------------------------------------------------------------------------
    def save(self, directory: str | Path, *, include_weights: bool = False, overwrite: bool = False,
             what: str = "ticket directory") -> Path:
        """Write the ticket directory atomically (a temporary directory renamed into place); return its path.

        ``directory`` is checked first (:func:`check_ticket_destination`): with ``overwrite`` only a ticket
        directory is replaced, never a file or a directory of anything else. ``what`` names ``directory`` in
        the messages (``"--out"``).
        """
        directory = Path(directory)
        with atomic_directory(directory, overwrite=overwrite, marker=TICKET_JSON, what=what,
                              is_marker=_is_ticket_json) as tmp:
            files = {}
            save_tensors_atomic(tmp / MASKS_FILE, self.masks, metadata={"format": FORMAT})
            files[MASKS_FILE] = sha256_file(tmp / MASKS_FILE)
            if self.arrays:
                save_tensors_atomic(tmp / PROVENANCE_FILE, self.arrays, metadata={"format": FORMAT})
                files[PROVENANCE_FILE] = sha256_file(tmp / PROVENANCE_FILE)
            if include_weights:
                save_tensors_atomic(tmp / WEIGHTS_FILE, self.random_weights(), metadata={"format": FORMAT})
                files[WEIGHTS_FILE] = sha256_file(tmp / WEIGHTS_FILE)
            meta = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "spec": self.spec.to_dict(),
                "distribution": self.distribution.to_dict(),
                "seed": self.seed,
                "provenance": self.provenance,
                "files": files,
                "written_by": {"strongticket": __version__, "torch": torch.__version__,
                               "python": platform.python_version()},
            }
            problem = first_error("ticket", meta)
            if problem is not None:  # a bug of ours: never write a ticket that load would refuse
                raise TicketFormatError(f"internal error: the {TICKET_JSON} to write breaks its schema: {problem}")
            write_json_atomic(tmp / TICKET_JSON, meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, check_weights: bool = True) -> Ticket:
        """Read a ticket directory, checking format, version, checksums, names, shapes and dtypes.

        Raises
        ------
        TicketFormatError
            One line saying what is wrong and where.
        """
        directory = Path(directory)
        where = f"{str(directory)!r}"
        if not directory.exists():
            raise TicketFormatError(f"ticket directory {where} does not exist")
        if not directory.is_dir():
            raise TicketFormatError(f"{where} is a file, not a ticket directory")
        meta_path = directory / TICKET_JSON
        if not meta_path.is_file():
            raise TicketFormatError(f"{where} is not a ticket directory: {TICKET_JSON} is missing")
        meta = read_json_object(meta_path, TicketFormatError)
        if meta.get("format") != FORMAT:
            got = meta.get("format")
            raise TicketFormatError(f"{TICKET_JSON} in {where} is not a strongticket ticket "
                                    f"(format {got!r}, expected {FORMAT!r})")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise TicketFormatError(f"ticket in {where} has format version {version!r}; this strongticket "
                                    f"{__version__} reads version {FORMAT_VERSION} only")
        problem = first_error("ticket", meta)
        if problem is not None:
            raise TicketFormatError(f"{TICKET_JSON} in {where}: {problem}")
        try:
            spec = NetSpec.from_dict(meta["spec"])
            distribution = WeightDistribution.from_dict(meta["distribution"])
        except InputError as exc:
            raise TicketFormatError(f"{TICKET_JSON} in {where}: {exc}") from None
        shapes = spec.parameter_shapes()
        unknown = [n for n, _ in distribution.tensor_scales if n not in shapes]
        if unknown:
            raise TicketFormatError(f"{TICKET_JSON} in {where}: 'distribution.tensor_scales' names {unknown}, "
                                    f"which are not parameters of the spec")
        files = meta["files"]
        masks = _read_tensors(directory, MASKS_FILE, files[MASKS_FILE])
        missing = [n for n in shapes if n not in masks]
        extra = [n for n in masks if n not in shapes]
        if missing or extra:
            raise TicketFormatError(f"{MASKS_FILE} in {where} does not match the spec: missing {missing}, "
                                    f"unexpected {extra}")
        for name, shape in shapes.items():
            m = masks[name]
            if m.dtype not in (torch.bool, torch.uint8):
                raise TicketFormatError(f"{MASKS_FILE} in {where}: mask {name!r} has dtype {m.dtype}, expected bool")
            if tuple(m.shape) != shape:
                raise TicketFormatError(f"{MASKS_FILE} in {where}: mask {name!r} has shape {tuple(m.shape)}, "
                                        f"the spec says {shape}")
            if m.dtype == torch.uint8:
                if bool((m > 1).any()):
                    raise TicketFormatError(f"{MASKS_FILE} in {where}: mask {name!r} holds values other than 0/1")
                masks[name] = m.to(torch.bool)
        arrays = {}
        if PROVENANCE_FILE in files:
            arrays = _read_tensors(directory, PROVENANCE_FILE, files[PROVENANCE_FILE])
        ticket = cls(spec, distribution, meta["seed"], masks, meta["provenance"], arrays)
        if WEIGHTS_FILE in files and check_weights:
            stored = _read_tensors(directory, WEIGHTS_FILE, files[WEIGHTS_FILE])
            regen = ticket.random_weights()
            for name, w in regen.items():
                s = stored.get(name)
                if s is None or s.dtype != w.dtype or tuple(s.shape) != tuple(w.shape):
                    raise TicketFormatError(f"{WEIGHTS_FILE} in {where}: parameter {name!r} is missing or has the "
                                            f"wrong shape/dtype (expected {tuple(w.shape)} {w.dtype})")
                if not torch.equal(s, w):
                    diff = int((s != w).sum())
                    raise TicketFormatError(f"{WEIGHTS_FILE} in {where}: {diff} entries of {name!r} differ from the "
                                            f"weights regenerated from seed {ticket.seed} ({distribution.name})")
        return ticket


def check_ticket_destination(directory: str | Path, *, overwrite: bool = False,
                             what: str = "ticket directory") -> bool:
    """Check, before any work, that :meth:`Ticket.save` may write ``directory``.

    Missing or empty: fine. A ticket directory (its ``ticket.json`` names the ticket format): fine with
    ``overwrite``, an error without. A file, or a directory of anything else: always an error, since
    strongticket never deletes what it did not write. Returns True when an existing ``directory`` will be
    replaced.

    Raises
    ------
    InputError
        One line naming ``what`` and ``directory``.
    """
    return check_writable_directory(directory, overwrite=overwrite, marker=TICKET_JSON, what=what,
                                    is_marker=_is_ticket_json)


def _is_ticket_json(path: Path) -> bool:
    """``path`` is a ticket.json strongticket wrote: a JSON object whose ``format`` is :data:`FORMAT`
    (any version: a ticket of another version is still ours to replace)."""
    return has_format(path, FORMAT)


def _read_tensors(directory: Path, filename: str, expected_sha: Any) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = directory / filename
    where = f"{str(directory)!r}"
    if not path.is_file():
        raise TicketFormatError(f"{filename} is missing from ticket directory {where}")
    actual = sha256_file(path)
    if actual != expected_sha:
        raise TicketFormatError(f"{filename} in {where} has sha256 {actual[:12]}..., {TICKET_JSON} records "
                                f"{str(expected_sha)[:12]}...: the file is damaged or was replaced")
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise TicketFormatError(f"{filename} in {where} is not a valid safetensors file: {exc}") from None


def _submodule(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    try:
        return module.get_submodule(path), attr
    except AttributeError:
        raise InputError(f"module has no submodule {path!r} for parameter {name!r}") from None


def fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """A sha256 over a state's names, dtypes, shapes and bytes: identifies a target in provenance."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def recorded_target(ticket: Ticket) -> TracedNet:
    """The target a constructed ticket records (``provenance["target"]["spec"]`` and the ``target.*`` arrays)
    as a traced net; a one-line :class:`InputError` when the ticket does not store it (built with
    ``record_target=False``, or found by training)."""
    info = ticket.provenance.get("target", {})
    if "spec" not in info:
        raise InputError("the ticket records no target spec; pass the target explicitly")
    spec = NetSpec.from_dict(info["spec"])
    state = {k[len("target."):]: v for k, v in ticket.arrays.items() if k.startswith("target.")}
    if set(state) != set(spec.parameter_shapes()):
        raise InputError("the ticket does not store the target's weights (constructed with record_target=False); "
                         "pass the target explicitly")
    return TracedNet(spec, state, {})


def human_count(n: int) -> str:
    """``8337000 -> '8.34 M'``."""
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return str(n)


__all__ = ["FORMAT_VERSION", "Ticket", "check_ticket_destination", "fingerprint", "human_count", "recorded_target"]
