"""Run configuration: frozen dataclasses that are the CLI's schema, the TOML schema and the provenance record.

Following open_lth's ``Hparams``: every hyperparameter is a typed field with a default; a run's complete
configuration is written to ``config.json`` and compared field by field when a run is resumed. Seeds for
the three random streams (initialisation, data order, augmentation) and for pruning scores are derived from
the one ``seed`` by :func:`derive_seed`, so a run is reproducible from its config alone.
"""

from __future__ import annotations

import hashlib
import math
import sys
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from strongticket.errors import InputError

SCHEDULES = ("constant", "step", "cosine")
OPTIMIZERS = ("sgd", "adam")
SCOPES = ("global", "layerwise")
INITS = ("default", "kaiming_normal", "kaiming_uniform", "signed_constant")


@dataclass(frozen=True)
class DataConfig:
    """Which data, how much of it, and how it is batched.

    ``train_subset``/``test_subset``: a seeded random subset size (None: all). ``augment``: None takes the
    dataset's standard augmentation (flip + crop for CIFAR-10, none for the others).
    """

    dataset: str = "mnist"
    batch_size: int = 128
    train_subset: int | None = None
    test_subset: int | None = None
    augment: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    """A zoo model (``strongticket.nets.zoo``) and its initialisation."""

    model: str = "lenet300100"
    width: float = 1.0
    bias: bool | None = None
    init: str = "default"


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule.

    ``schedule``: ``constant``, ``step`` (multiply by ``gamma`` at each epoch in ``milestones``) or ``cosine``
    (to 0 at the end of training); ``warmup_steps`` of linear warm-up multiply any of them. ``epochs`` is the
    length of one training phase (each IMP round, each retraining).
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    epochs: int = 10
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_steps: int = 0
    amp: bool = False
    early_stop_patience: int | None = None


@dataclass(frozen=True)
class PruneConfig:
    """The pruning method and its settings (fields a method does not use are ignored, but recorded).

    Attributes
    ----------
    method : str
        A name from :func:`strongticket.train.methods.method_names`.
    density : float
        Fraction of prunable weights kept, in (0, 1].
    scope : str
        ``global`` (one threshold over all prunable tensors) or ``layerwise`` (the same density in each).
    prune_bias, prune_output : bool
        Whether biases, and the output layer's weight, are prunable (conv/linear weights always are).
    rate : float
        IMP: fraction of the remaining weights pruned per round (rounds run until ``density`` is reached).
    rewind_step : int
        IMP with rewinding: the training step whose weights survivors are reset to.
    reinit_control : bool
        IMP / one-shot magnitude: also train the final mask from a fresh random init (the random-reinit control).
    retrain : str
        One-shot magnitude: ``rewind`` (reset to init and retrain, one-shot LTH) or ``finetune``.
    gmp_start, gmp_end : float
        Gradual magnitude: fraction of training where pruning starts and stops; ``gmp_every`` steps apart.
    score_batches : int
        SNIP / GraSP: number of training batches the scores are computed on.
    synflow_iters : int
        SynFlow: number of prune-rescore iterations (exponential density schedule).
    grasp_temperature : float
        GraSP: softmax temperature of the Hessian-gradient product.
    """

    method: str = "dense"
    density: float = 1.0
    scope: str = "global"
    prune_bias: bool = False
    prune_output: bool = True
    rate: float = 0.2
    rewind_step: int = 0
    reinit_control: bool = False
    retrain: str = "rewind"
    gmp_start: float = 0.0
    gmp_end: float = 0.75
    gmp_every: int = 100
    score_batches: int = 1
    synflow_iters: int = 100
    grasp_temperature: float = 200.0


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run depends on; written to ``config.json`` and checked on resume."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    seed: int = 0
    eval_every: int = 1
    checkpoint_every: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready nested dict."""
        d = asdict(self)
        d["optim"]["milestones"] = list(self.optim.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build a configuration from a (possibly partial) nested dict; unknown keys are an InputError."""
        sections = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "prune": PruneConfig}
        top = {f.name for f in fields(cls)}
        unknown = set(d) - top
        if unknown:
            raise InputError(f"unknown configuration keys {sorted(unknown)}; valid: {sorted(top)}")
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in sections:
                if not isinstance(value, dict):
                    raise InputError(f"configuration section {key!r} must be a table, got {value!r}")
                valid = {f.name for f in fields(sections[key])}
                bad = set(value) - valid
                if bad:
                    raise InputError(f"unknown keys {sorted(bad)} in [{key}]; valid: {sorted(valid)}")
                if "milestones" in value:
                    value = {**value, "milestones": tuple(value["milestones"])}
                kwargs[key] = sections[key](**value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> RunConfig:
        """Read a configuration from a TOML file with ``[data]``, ``[model]``, ``[optim]``, ``[prune]`` tables."""
        try:
            return cls.from_dict(tomllib.loads(Path(path).read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"cannot parse {str(path)!r} as TOML: {exc}") from None

    def with_updates(self, **sections: dict[str, Any]) -> RunConfig:
        """Return a copy with fields of the named sections replaced (``None`` values are skipped)."""
        out = self
        for name, values in sections.items():
            values = {k: v for k, v in values.items() if v is not None}
            if not values:
                continue
            if name == "run":
                out = replace(out, **values)
            else:
                out = replace(out, **{name: replace(getattr(out, name), **values)})
        return out

    def validate(self) -> RunConfig:
        """Check every value against its allowed range; return ``self`` or raise :class:`InputError`."""
        from strongticket.nets.zoo import model_entry
        from strongticket.train.data import dataset_entry
        from strongticket.train.methods import method_entry

        dataset_entry(self.data.dataset)
        model_entry(self.model.model)
        method_entry(self.prune.method)
        d = self.prune.density
        if not (isinstance(d, (int, float)) and math.isfinite(d) and 0 < d <= 1):
            raise InputError(f"density must be in (0, 1], got {d}")
        checks = [
            (self.data.batch_size >= 1, f"batch_size must be >= 1, got {self.data.batch_size}"),
            (self.data.augment in (None, "none", "flip_crop"),
             f"augment must be none or flip_crop, got {self.data.augment!r}"),
            (self.model.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.model.init!r}"),
            (self.model.width > 0, f"width must be > 0, got {self.model.width}"),
            (self.optim.optimizer in OPTIMIZERS,
             f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optim.optimizer!r}"),
            (self.optim.schedule in SCHEDULES,
             f"schedule must be one of {', '.join(SCHEDULES)}, got {self.optim.schedule!r}"),
            (self.optim.lr > 0, f"lr must be > 0, got {self.optim.lr}"),
            (self.optim.epochs >= 1, f"epochs must be >= 1, got {self.optim.epochs}"),
            (0 <= self.optim.momentum < 1, f"momentum must be in [0, 1), got {self.optim.momentum}"),
            (self.optim.weight_decay >= 0, f"weight_decay must be >= 0, got {self.optim.weight_decay}"),
            (self.optim.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.optim.warmup_steps}"),
            (self.prune.scope in SCOPES, f"scope must be one of {', '.join(SCOPES)}, got {self.prune.scope!r}"),
            (0 < self.prune.rate < 1, f"rate must be in (0, 1), got {self.prune.rate}"),
            (self.prune.rewind_step >= 0, f"rewind_step must be >= 0, got {self.prune.rewind_step}"),
            (self.prune.retrain in ("rewind", "finetune"),
             f"retrain must be rewind or finetune, got {self.prune.retrain!r}"),
            (0 <= self.prune.gmp_start < self.prune.gmp_end <= 1,
             f"need 0 <= gmp_start < gmp_end <= 1, got {self.prune.gmp_start}, {self.prune.gmp_end}"),
            (self.prune.gmp_every >= 1, f"gmp_every must be >= 1, got {self.prune.gmp_every}"),
            (self.prune.score_batches >= 1, f"score_batches must be >= 1, got {self.prune.score_batches}"),
            (self.prune.synflow_iters >= 1, f"synflow_iters must be >= 1, got {self.prune.synflow_iters}"),
            (self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}"),
            (self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)
        return self


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Return ``"key: a -> b"`` for every (nested, dotted) key whose value differs between ``a`` and ``b``."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        name = f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, name + ".")
        elif va != vb:
            out.append(f"{name}: {va!r} -> {vb!r}")
    return out


def derive_seed(seed: int, *stream: object) -> int:
    """Return a 63-bit seed for the named random stream (e.g. ``("data", epoch)``) derived from ``seed``."""
    text = ":".join(str(s) for s in (seed, *stream)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def versions() -> dict[str, str]:
    """Versions of the libraries a run's numbers depend on (recorded in ``config.json``)."""
    import numpy
    import torch

    from strongticket import __version__

    return {"strongticket": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": sys.version.split()[0]}
