"""A training phase's own learning rate and momentum, as one optimiser parameter group.

Every phase of a run trains with the ``[optim]`` section (:class:`~strongticket.train.loop.Trainer`). A method
whose phases the papers run with different settings (GSM's phase at a lower rate and a higher momentum than
the dense phase; GEM-MINER's score search and its fine-tuning) passes its phase one parameter group that
overrides them: ``lr_scale`` (the group's rate is the schedule's rate times it, so warm-up and decay still
apply) and, for SGD, ``momentum`` (and ``nesterov`` when ``optim.nesterov`` asks for it). An unset override
returns the plain parameter list, so the phase is exactly what it was without the option.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from strongticket.errors import InputError
from strongticket.train.config import OptimConfig


def check_momentum(optim: OptimConfig, value: float | None, option: str) -> None:
    """Refuse a phase momentum under Adam, which has no momentum setting to override (one line, naming
    ``option``, e.g. ``prune.gsm_momentum (--gsm-momentum)``)."""
    if value is not None and optim.optimizer != "sgd":
        raise InputError(f"{option} sets an SGD momentum, but optim.optimizer (--optimizer) is "
                         f"{optim.optimizer!r}; leave it unset or use sgd, got {value:g}")


def phase_params(params: Sequence[torch.Tensor], optim: OptimConfig, *, lr: float | None = None,
                 momentum: float | None = None) -> list[Any]:
    """The ``trainable`` argument of one phase: ``params`` with the phase's learning rate and momentum.

    Parameters
    ----------
    params : sequence of tensors
        What the phase trains.
    optim : OptimConfig
        The run's optimiser section (the rate the schedule scales, and the optimiser).
    lr : float or None
        The phase's base learning rate (None: ``optim.lr``).
    momentum : float or None
        The phase's SGD momentum in [0, 1) (None: ``optim.momentum``); refused under Adam.

    Returns
    -------
    list
        ``list(params)`` when both are None (the phase is then identical to one without the options), else
        one parameter-group dict.
    """
    params = list(params)
    if lr is None and momentum is None:
        return params
    group: dict[str, Any] = {"params": params}
    if lr is not None:
        group["lr_scale"] = lr / optim.lr
    if momentum is not None:
        if optim.optimizer != "sgd":
            raise InputError(f"a phase momentum applies to SGD only, got optimizer {optim.optimizer!r}")
        group["momentum"] = momentum
        group["nesterov"] = optim.nesterov and momentum > 0
    return [group]


def phase_settings(optim: OptimConfig, *, lr: float | None = None, momentum: float | None = None
                   ) -> dict[str, float | None]:
    """The learning rate and momentum a phase actually uses (for the run's summary); momentum None under Adam."""
    sgd = optim.optimizer == "sgd"
    return {"lr": optim.lr if lr is None else lr,
            "momentum": (optim.momentum if momentum is None else momentum) if sgd else None}
