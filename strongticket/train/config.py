"""Run configuration: frozen dataclasses that are the CLI's schema, the TOML schema and the provenance record.

Following open_lth's ``Hparams``: every hyperparameter is a typed field with a default and a help text
(:func:`setting`); the type and range checks (:func:`validate_section`), the TOML reader and the
``strongticket train`` flags are all generated from these declarations, so a default or a range is written
once. A run's complete configuration is written to ``config.json`` and compared field by field when a run is
resumed. Fields whose default is ``None`` mean "the method's (or dataset's) own choice" and are resolved once,
where the run starts (:func:`strongticket.train.run.resolve_config`). Seeds for the random streams
(initialisation, data order, augmentation, pruning scores) are derived from the one ``seed`` by
:func:`derive_seed`, so a run is reproducible from its config alone.

This module holds data and value checks only: names that must be found in a registry (dataset, model,
method) are looked up where the run starts, so that the configuration imports nothing of the trainer.
"""

from __future__ import annotations

import hashlib
import math
import sys
import types
import typing
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from strongticket.errors import InputError

SCHEDULES = ("constant", "step", "cosine")
OPTIMIZERS = ("sgd", "adam")
SCOPES = ("global", "layerwise")
INITS = ("default", "kaiming_normal", "kaiming_uniform", "signed_constant")
AUGMENTS = ("none", "flip_crop")
RETRAINS = ("rewind", "finetune")
EB_VARIANTS = ("channel", "magnitude")
ISP_VOTES = ("majority", "at-least-one", "all")
GEM_REGULARISERS = ("l2", "l1")
BIP_GRANULARITIES = ("weight", "channel")
TRANSFER_WEIGHTS = ("source", "init")


@dataclass(frozen=True)
class Bound:
    """An interval a numeric setting must lie in (``None``: unbounded on that side)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, v: float) -> bool:
        """True when ``v`` lies in the interval."""
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def describe(self) -> str:
        """The interval as text: ``>= 1``, ``> 0``, ``in (0, 1]``."""
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


POSITIVE = Bound(0, None, lo_open=True)
AT_LEAST_1 = Bound(1)
NON_NEGATIVE = Bound(0)
UNIT = Bound(0, 1)


def setting(default: Any, help: str, *, bound: Bound | None = None, choices: tuple[str, ...] | None = None,
            flag: str | None = None, aliases: tuple[str, ...] = ()) -> Any:
    """A dataclass field with its help text, allowed range or choices, and CLI flag (default ``--field-name``)."""
    return field(default=default, metadata={"help": help, "bound": bound, "choices": choices, "flag": flag,
                                            "aliases": aliases})


@dataclass(frozen=True)
class DataConfig:
    """Which data, how much of it, and how it is batched."""

    dataset: str = setting("mnist", "digits, mnist, fashion-mnist or cifar10.")
    batch_size: int = setting(128, "Global batch size (examples per optimiser step).", bound=AT_LEAST_1)
    train_subset: int | None = setting(None, "Train on a seeded random subset of N training images "
                                             "(default: all).", bound=AT_LEAST_1)
    test_subset: int | None = setting(None, "Evaluate on a seeded random subset of N test images (default: all).",
                                      bound=AT_LEAST_1)
    augment: str | None = setting(None, "Training augmentation, none or flip_crop (default: the dataset's own: "
                                        "flip_crop for cifar10, none otherwise).", choices=AUGMENTS)

    def __post_init__(self) -> None:
        validate_section(self, "data")


@dataclass(frozen=True)
class ModelConfig:
    """A zoo model (``strongticket.nets.zoo``) and its initialisation."""

    model: str = setting("lenet300100", "Zoo model: fc2, lenet300100, lenet5, conv2/4/6, resnet20.")
    width: float = setting(1.0, "Hidden width multiplier.", bound=POSITIVE)
    bias: bool | None = setting(None, "Whether layers have biases (default: the model's own).")
    init: str | None = setting(None, "Initialisation: default, kaiming_normal, kaiming_uniform, signed_constant "
                                     "(default: the method's own; edge-popup: signed_constant).", choices=INITS)
    init_from: str | None = setting(None, "A finished run directory whose final weights start this run (fine-tuning "
                                          "a pre-trained model); its classifier is re-initialised when the class "
                                          "count differs.")

    def __post_init__(self) -> None:
        validate_section(self, "model")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule.

    ``schedule``: ``constant``, ``step`` (multiply by ``gamma`` at each epoch in ``milestones``) or ``cosine``
    (to 0 at the end of training); ``warmup_steps`` of linear warm-up multiply any of them. ``epochs`` is the
    length of one training phase (each IMP round, each retraining).
    """

    optimizer: str = setting("sgd", "Optimiser: sgd or adam.", choices=OPTIMIZERS)
    lr: float = setting(0.1, "Learning rate.", bound=POSITIVE)
    momentum: float = setting(0.0, "SGD momentum, in [0, 1).", bound=Bound(0, 1, hi_open=True))
    nesterov: bool = setting(False, "SGD: Nesterov momentum (with momentum > 0).")
    weight_decay: float = setting(0.0, "Weight decay (L2 penalty).", bound=NON_NEGATIVE)
    epochs: int = setting(10, "Epochs per training phase (each IMP round, each retraining).", bound=AT_LEAST_1)
    schedule: str = setting("constant", "Learning-rate schedule: constant, step or cosine.", choices=SCHEDULES)
    milestones: tuple[int, ...] = setting((), "Step schedule: epochs at which the rate is multiplied by gamma "
                                              "(comma-separated on the command line).", bound=AT_LEAST_1)
    gamma: float = setting(0.1, "Step schedule: factor applied at each milestone.", bound=POSITIVE)
    warmup_steps: int = setting(0, "Linear learning-rate warm-up steps.", bound=NON_NEGATIVE)
    amp: bool = setting(False, "bfloat16 autocast on CUDA.")
    early_stop_patience: int | None = setting(None, "Stop after N evaluations without improvement (default: "
                                                    "never).", bound=AT_LEAST_1, aliases=("--early-stop",))

    def __post_init__(self) -> None:
        validate_section(self, "optim")


@dataclass(frozen=True)
class PruneConfig:
    """The pruning method and its settings (fields a method does not use are ignored, but recorded).

    Attributes
    ----------
    method : str
        A name from :func:`strongticket.train.methods.method_names`.
    density : float
        Fraction of prunable weights kept, in (0, 1]; None means 1 for ``dense`` and is an error for the
        pruning methods.
    scope : str or None
        ``global`` (one threshold over all prunable tensors) or ``layerwise`` (the same density in each); None
        takes the method's own (``layerwise`` for edge-popup and random-erk, ``global`` otherwise).
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
    eb_variant, eb_threshold, eb_window, eb_search, eb_l1
        Early-Bird: channel or magnitude masks, the distance threshold, the FIFO length, the longest search (a
        fraction of the schedule) and the network-slimming L1 coefficient (see
        :mod:`strongticket.train.methods.early_bird`).
    isp_copies, isp_vote, isp_step, isp_main_fraction, isp_copy_fraction
        Instant Soup Pruning: copies per stage, the vote rule, each copy's pruning step, the main model's and
        each copy's share of an epoch per stage (see :mod:`strongticket.train.methods.isp`).
    gsm_lottery, gsm_lr, gsm_momentum
        Global Sparse Momentum: also retrain the final mask from the initial weights; the learning rate and
        SGD momentum of the GSM phase (unset: ``optim``'s) (:mod:`~.methods.gsm`).
    gem_reg, gem_regulariser, gem_period, gem_finetune, gem_score_lr, gem_momentum, gem_finetune_lr
        GEM-MINER: score regulariser and its coefficient, the freezing period in epochs, whether the weights
        are fine-tuned afterwards, and the search's learning rate and SGD momentum and the fine-tuning's
        learning rate (unset: ``optim``'s) (:mod:`~.methods.gem_miner`).
    bip_score_lr, bip_implicit, bip_finetune, bip_granularity
        BiP: the upper-level learning rate, the implicit-gradient coefficient, the optional fine-tuning, and
        whether the mask selects weights or whole output channels (:mod:`~.methods.bip`).
    im_steps, im_lanczos, im_max_rank, im_batches
        Inertial-manifold reconstruction: SGD steps before pruning, Lanczos iterations, the largest eigenspace
        considered and the batches the Hessian averages over (:mod:`~.methods.inertial`).
    pool_alphas, pool_candidates, pool_val
        Lottery Pools: interpolation coefficients, candidate tickets and validation images
        (:mod:`~.methods.lottery_pools`).
    mask_from, transfer_weights, transfer_shuffle
        Ticket transfer: the source run, where the surviving weights start, and the shuffled control
        (:mod:`~.methods.transfer`).
    """

    method: str = setting("dense", "Pruning method: dense, random, random-erk, magnitude, gmp, imp, imp-rewind, "
                                   "edge-popup, snip, grasp, synflow, early-bird, isp, gsm, gem-miner, bip, "
                                   "inertial (a reconstruction from the abstract of Zhang et al. 2021), "
                                   "lottery-pools, transfer.")
    density: float | None = setting(None, "Fraction of prunable weights kept, in (0, 1] (required by every "
                                          "method but dense).", bound=Bound(0, 1, lo_open=True))
    scope: str | None = setting(None, "Pruning threshold scope: global or layerwise (default: the method's own).",
                                choices=SCOPES)
    prune_bias: bool = setting(False, "Whether biases are prunable.")
    prune_output: bool = setting(True, "Whether the output layer's weight is prunable.")
    rate: float = setting(0.2, "IMP: fraction of the remaining weights pruned per round.",
                          bound=Bound(0, 1, lo_open=True, hi_open=True))
    rewind_step: int = setting(0, "imp-rewind: training step whose weights the survivors are reset to.",
                               bound=NON_NEGATIVE)
    reinit_control: bool = setting(False, "IMP/magnitude: also train the final mask from a fresh random init.")
    retrain: str = setting("rewind", "magnitude: rewind (reset to init, then retrain) or finetune.",
                           choices=RETRAINS)
    gmp_start: float = setting(0.0, "gmp: fraction of training where pruning starts.", bound=Bound(0, 1, hi_open=True))
    gmp_end: float = setting(0.75, "gmp: fraction of training where pruning stops.", bound=Bound(0, 1, lo_open=True))
    gmp_every: int = setting(100, "gmp: steps between two pruning events.", bound=AT_LEAST_1)
    score_batches: int = setting(1, "snip/grasp: training batches the scores are computed on.", bound=AT_LEAST_1)
    synflow_iters: int = setting(100, "synflow: prune-rescore iterations.", bound=AT_LEAST_1)
    grasp_temperature: float = setting(200.0, "grasp: softmax temperature of the Hessian-gradient product.",
                                       bound=POSITIVE)
    eb_variant: str | None = setting(None, "early-bird: channel (BatchNorm scales, network slimming) or magnitude "
                                           "(unstructured weights); default: channel for models with BatchNorm, "
                                           "magnitude otherwise.", choices=EB_VARIANTS)
    eb_threshold: float = setting(0.1, "early-bird: draw the ticket when every mask distance (fraction of entries "
                                       "that differ) to the newest mask in the window is below this.",
                                  bound=Bound(0, 1, lo_open=True))
    eb_window: int = setting(5, "early-bird: number of most recent per-epoch masks compared (the FIFO).",
                             bound=Bound(2))
    eb_search: float = setting(0.5, "early-bird: the dense search phase lasts at most this fraction of the "
                                    "optim.epochs schedule.", bound=Bound(0, 1, lo_open=True, hi_open=True))
    isp_copies: int = setting(5, "isp: number of cheap copies per stage, each proposing a weak mask.",
                              bound=AT_LEAST_1)
    isp_vote: str = setting("majority", "isp: how the copies' masks combine: a weight is kept when at-least-one, "
                                        "all, or a majority of the copies keep it.", choices=ISP_VOTES)
    isp_step: float = setting(0.1, "isp: fraction of the remaining weights each copy prunes per stage.",
                              bound=Bound(0, 1, lo_open=True, hi_open=True))
    isp_main_fraction: float = setting(0.5, "isp: fraction of an epoch the main model trains per stage.",
                                       bound=Bound(0, 1, lo_open=True))
    isp_copy_fraction: float = setting(0.1, "isp: fraction of the training set each copy trains on (disjoint "
                                            "subsets; isp_copies x isp_copy_fraction <= 1).",
                                       bound=Bound(0, 1, lo_open=True))
    eb_l1: float = setting(1e-4, "early-bird channel variant: L1 coefficient on BatchNorm scales during the search "
                                 "(network slimming).", bound=NON_NEGATIVE)
    gsm_lottery: bool = setting(False, "gsm: also apply the final mask to the initial weights and retrain them "
                                       "(the lottery-ticket variant).")
    gem_reg: float = setting(1e-4, "gem-miner: coefficient of the regulariser on the scores.", bound=NON_NEGATIVE)
    gem_regulariser: str = setting("l2", "gem-miner: regulariser on the scores, l2 or l1.", choices=GEM_REGULARISERS)
    gem_period: int = setting(5, "gem-miner: epochs between two freezings of the globally lowest scores.",
                              bound=AT_LEAST_1)
    gem_finetune: bool = setting(True, "gem-miner: fine-tune the weights of the found mask afterwards.")
    gsm_lr: float | None = setting(None, "gsm: learning rate of the GSM phase (default: optim.lr; the reference "
                                         "setting is 1e-2 after a dense phase at 3e-2).", bound=POSITIVE)
    gsm_momentum: float | None = setting(None, "gsm: SGD momentum of the GSM phase, in [0, 1) (default: "
                                               "optim.momentum; the reference setting is 0.99).",
                                         bound=Bound(0, 1, hi_open=True))
    gem_score_lr: float | None = setting(None, "gem-miner: learning rate of the score search (default: optim.lr; "
                                               "the reference setting is 0.1).", bound=POSITIVE)
    gem_momentum: float | None = setting(None, "gem-miner: SGD momentum of the score search, in [0, 1) (default: "
                                               "optim.momentum; the reference setting is 0.9).",
                                         bound=Bound(0, 1, hi_open=True))
    gem_finetune_lr: float | None = setting(None, "gem-miner: learning rate of the fine-tuning and of the random "
                                                  "control (default: optim.lr; the reference setting is 0.01).",
                                            bound=POSITIVE)
    bip_score_lr: float = setting(0.1, "bip: learning rate of the upper-level (score) steps.", bound=POSITIVE)
    bip_implicit: float = setting(1e-4, "bip: coefficient of the implicit-gradient correction (1/gamma of the "
                                        "lower-level L2 term).", bound=NON_NEGATIVE)
    bip_finetune: bool = setting(False, "bip: fine-tune the weights of the found mask afterwards.")
    bip_granularity: str = setting("weight", "bip: what the mask selects: weight (unstructured) or channel (whole "
                                             "output channels of conv layers, whole neurons of linear layers).",
                                   choices=BIP_GRANULARITIES)
    im_steps: int = setting(200, "inertial: SGD steps towards a local minimum before the one-shot pruning.",
                            bound=AT_LEAST_1)
    im_lanczos: int = setting(40, "inertial: Lanczos iterations on Hessian-vector products.", bound=Bound(2))
    im_max_rank: int = setting(20, "inertial: largest dominant-eigenspace size considered (the size is taken at "
                                   "the largest spectral gap below it).", bound=AT_LEAST_1)
    im_batches: int = setting(4, "inertial: training batches the Hessian is averaged over.", bound=AT_LEAST_1)
    pool_alphas: tuple[float, ...] = setting((0.5,), "lottery-pools: interpolation coefficients tried per "
                                                     "candidate ticket (comma-separated).",
                                             bound=Bound(0, 1, lo_open=True, hi_open=True))
    pool_candidates: int = setting(4, "lottery-pools: most neighbouring IMP-level tickets tried.", bound=AT_LEAST_1)
    pool_val: int = setting(1000, "lottery-pools: training images held out as the validation split that "
                                  "accepts a candidate.", bound=AT_LEAST_1)
    mask_from: str | None = setting(None, "transfer: a finished run directory whose final mask is trained here "
                                          "(ticket transfer across datasets or optimisers).")
    transfer_weights: str = setting("source", "transfer: start the surviving weights from the source run's "
                                              "initial (or rewound) weights, or from this run's own init.",
                                    choices=TRANSFER_WEIGHTS)
    transfer_shuffle: bool = setting(False, "transfer: shuffle the mask within each layer (the random control "
                                            "with the source's per-layer densities).")

    def __post_init__(self) -> None:
        validate_section(self, "prune")
        if not self.gmp_start < self.gmp_end:
            raise InputError(f"prune.gmp_start (--gmp-start) must be below prune.gmp_end (--gmp-end), got "
                             f"{self.gmp_start} and {self.gmp_end}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run depends on; written to ``config.json`` and checked on resume."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    seed: int = setting(0, "Seed of every random draw (init, data order, augmentation, scores).", bound=NON_NEGATIVE)
    eval_every: int = setting(1, "Evaluate on the test set every N epochs (and at the end of each phase).",
                              bound=AT_LEAST_1)
    checkpoint_every: int = setting(1, "Checkpoint every N epochs.", bound=AT_LEAST_1)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise InputError(f"configuration section {name!r} must be a {cls.__name__}, "
                                 f"got {getattr(self, name)!r}")
        validate_section(self, "run")

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready nested dict."""
        def lists(v: Any) -> Any:  # tuples (milestones, pool_alphas) are JSON lists
            if isinstance(v, dict):
                return {k: lists(x) for k, x in v.items()}
            return list(v) if isinstance(v, tuple) else v

        return lists(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build a configuration from a (possibly partial) nested dict; unknown keys and wrong types are an
        :class:`InputError` naming the key."""
        if not isinstance(d, dict):
            raise InputError(f"a configuration must be a table of settings, got {d!r}")
        top = {f.name for f in fields(cls)}
        unknown = set(d) - top
        if unknown:
            raise InputError(f"unknown configuration keys {sorted(unknown)}; valid: {sorted(top)}")
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in SECTIONS:
                if not isinstance(value, dict):
                    raise InputError(f"configuration section [{key}] must be a table, got {value!r}")
                valid = {f.name for f in fields(SECTIONS[key])}
                bad = set(value) - valid
                if bad:
                    raise InputError(f"unknown keys {sorted(bad)} in [{key}]; valid: {sorted(valid)}")
                kwargs[key] = SECTIONS[key](**value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> RunConfig:
        """Read a configuration from a TOML file with ``[data]``, ``[model]``, ``[optim]``, ``[prune]`` tables."""
        from strongticket.files import read_toml

        data = read_toml(path, "--config")
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(f"--config {str(path)!r}: {exc}") from None

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
        """Return ``self``: every value was checked when the dataclasses were built (kept for callers)."""
        return self


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "prune": PruneConfig}


# ----------------------------------------------------------------------------------- generated checks


def flag_name(f: Field) -> str:
    """The ``strongticket train`` flag of field ``f``: ``--field-name`` unless the field names another."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def setting_fields(cls: type) -> list[Field]:
    """The settings of a config dataclass (its fields that are not sub-sections)."""
    return [f for f in fields(cls) if not (cls is RunConfig and f.name in SECTIONS)]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _union_args(tp: Any) -> tuple[Any, ...]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return typing.get_args(tp)
    return (tp,)


def describe_type(tp: Any) -> str:
    """What a value of annotation ``tp`` must be, in words (``an integer``, ``a number or unset``...)."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    parts = []
    for a in _union_args(tp):
        if a is type(None):
            continue
        if typing.get_origin(a) is tuple:
            noun = describe_type(typing.get_args(a)[0]).split(" ", 1)[1]  # "an integer" -> "integer"
            parts.append(f"a list of {noun}s")
        else:
            parts.append(words.get(a, getattr(a, "__name__", str(a))))
    text = " or ".join(parts)
    return text + " (or unset)" if type(None) in _union_args(tp) else text


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """``(ok, value)``: whether ``value`` has type ``tp``, and the value in its canonical form
    (an int for a float field becomes a float; a list for a tuple field becomes a tuple)."""
    for a in _union_args(tp):
        if a is type(None):
            if value is None:
                return True, None
        elif a is bool:
            if isinstance(value, bool):
                return True, value
        elif a is int:
            # bool is an int subclass and 1.0 is not an integer: both are refused, as TOML's "true" and "1.5" are
            if isinstance(value, int) and not isinstance(value, bool):
                return True, value
        elif a is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return True, float(value)
        elif a is str:
            if isinstance(value, str):
                return True, value
        elif typing.get_origin(a) is tuple:
            if isinstance(value, (list, tuple)):
                item = typing.get_args(a)[0]
                out = []
                for v in value:
                    ok, v = _coerce(v, item)
                    if not ok:
                        break
                    out.append(v)
                else:
                    return True, tuple(out)
    return False, value


def validate_section(obj: Any, section: str) -> None:
    """Check (and canonicalise in place) every setting of the frozen config dataclass ``obj``.

    The checks are generated from the declarations: the type from the field's annotation (an ``int`` must be
    an integer, not a bool or a float; a ``float`` accepts integers; a ``bool`` only true/false; a
    ``tuple[int, ...]`` a list of integers; ``X | None`` also accepts unset), then the field's ``bound``
    (applied to every element of a list) or ``choices``.

    Raises
    ------
    InputError
        One line naming the key (``section.field``) and its flag, what was expected and what was received.
    """
    hints = _hints(type(obj))
    for f in setting_fields(type(obj)):
        value = getattr(obj, f.name)
        key = f.name if section == "run" else f"{section}.{f.name}"
        where = f"{key} ({flag_name(f)})"
        ok, canon = _coerce(value, hints[f.name])
        if not ok:
            raise InputError(f"{where} must be {describe_type(hints[f.name])}, got {value!r}")
        if canon is not value:
            object.__setattr__(obj, f.name, canon)
        if canon is None:
            continue
        bound: Bound | None = f.metadata.get("bound")
        if bound is not None:
            for v in (canon if isinstance(canon, tuple) else (canon,)):
                if not bound.holds(v):
                    raise InputError(f"{where} must be {bound.describe()}, got {value!r}")
        choices = f.metadata.get("choices")
        if choices is not None and canon not in choices:
            raise InputError(f"{where} must be one of {', '.join(choices)}, got {value!r}")


def field_default(f: Field) -> Any:
    """The declared default of field ``f``."""
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Return ``"key: a -> b"`` for every (nested, dotted) key whose value differs between ``a`` and ``b``."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        name = f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, name + ".")
        elif va == "<missing>" and vb == _declared_default(name):
            # a setting added after ``a`` was written, at its default (which reproduces what the older version
            # did): the same run, so a run directory made by an older version still resumes
            continue
        elif va != vb:
            out.append(f"{name}: {va!r} -> {vb!r}")
    return out


def _declared_default(dotted: str) -> Any:
    """The declared default of setting ``section.field`` (or a top-level ``field``); a private sentinel when no
    such setting exists."""
    parts = dotted.split(".")
    cls = SECTIONS.get(parts[0]) if len(parts) == 2 else RunConfig if len(parts) == 1 else None
    for f in setting_fields(cls) if cls is not None else ():
        if f.name == parts[-1]:
            d = field_default(f)
            return list(d) if isinstance(d, tuple) else d
    return _NO_SETTING


_NO_SETTING = object()


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
