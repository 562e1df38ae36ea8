"""Pruning methods, one file each, behind one interface (:class:`~strongticket.train.methods.base.Method`).

The registry maps a name to its class; :func:`method_entry` raises an :class:`InputError` listing the valid
names for an unknown one.
"""

from __future__ import annotations

from strongticket.errors import InputError
from strongticket.train.methods.base import Method
from strongticket.train.methods.bip import BiP
from strongticket.train.methods.dense import Dense
from strongticket.train.methods.early_bird import EarlyBird
from strongticket.train.methods.edge_popup import EdgePopup
from strongticket.train.methods.gem_miner import GemMiner
from strongticket.train.methods.gmp import GradualMagnitude
from strongticket.train.methods.grasp import GraSP
from strongticket.train.methods.gsm import GSM
from strongticket.train.methods.imp import IMP, IMPRewind
from strongticket.train.methods.inertial import Inertial
from strongticket.train.methods.isp import InstantSoup
from strongticket.train.methods.lottery_pools import LotteryPools
from strongticket.train.methods.magnitude import OneShotMagnitude
from strongticket.train.methods.random import RandomERK, RandomPrune
from strongticket.train.methods.snip import SNIP
from strongticket.train.methods.synflow import SynFlow
from strongticket.train.methods.transfer import TicketTransfer

_REGISTRY: dict[str, type[Method]] = {m.name: m for m in [
    Dense, RandomPrune, RandomERK, OneShotMagnitude, GradualMagnitude, IMP, IMPRewind, EdgePopup, SNIP, GraSP,
    SynFlow, EarlyBird, InstantSoup, LotteryPools, BiP, GemMiner, TicketTransfer, GSM, Inertial,
]}


def method_names() -> list[str]:
    """Return the names of the registered pruning methods."""
    return list(_REGISTRY)


def method_entry(name: str) -> type[Method]:
    """Return the method class called ``name``; unknown names raise :class:`InputError` listing valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}; valid methods: {', '.join(_REGISTRY)}") from None


__all__ = ["Method", "method_entry", "method_names"]
