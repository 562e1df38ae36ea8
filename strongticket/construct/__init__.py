"""Constructions: a target network in, a Ticket (random spec + seed + masks) out. One module per paper.

* :mod:`strongticket.construct.pensia`: Pensia et al. 2020, depth 2L, subset sum per weight;
* :mod:`strongticket.construct.malach`: Malach et al. 2020, the "find one" baseline on the same network;
* :mod:`strongticket.construct.cnn2l`: da Cunha, Natale, Viennot 2022, depth 2L for CNNs (subset sum per
  kernel entry, :mod:`strongticket.construct.conv`);
* :mod:`strongticket.construct.structured`: da Cunha, d'Amore, Natale 2023, whole kernels or filters by
  multidimensional subset sum;
* :mod:`strongticket.construct.lplus1`: Burkholz 2022, depth L+1 for most activations;
* :mod:`strongticket.construct.engine` over :mod:`strongticket.construct.blocks`: the one 2L engine (layer
  jobs, choosers, block size, ticket assembly) shared by the 2L constructions;
* :mod:`strongticket.construct.distribution`: the random weights' law, by name or relative to the target;
* :mod:`strongticket.construct.shard`: a 2L construction in slices (``--shard I/K``) and their merge.

:data:`CONSTRUCTIONS` is the one table of constructions (an explicit literal, nothing registers itself):
each :class:`Construction` names its function, its paper and the keyword options it accepts, and
:func:`build` looks a construction up, refuses every option it does not accept, and runs it. A new
construction is a module here plus one entry below (see ``docs/design.md`` and ``docs/constructions.md``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from strongticket.construct import cnn2l, lplus1, malach, pensia, structured
from strongticket.errors import InputError
from strongticket.ticket import Ticket
from strongticket.validation import check_int, check_positive, check_unit_open


@dataclass(frozen=True)
class Construction:
    """One construction of the registry.

    Attributes
    ----------
    name : str
        The name ``strongticket construct --method`` takes.
    construct : callable
        ``construct(target, **options) -> Ticket``: ``target`` an ``nn.Module`` (or a traced net), options
        keyword-only.
    paper : str
        Authors, title, venue and year of the theorem it realises.
    summary : str
        One line: what it does.
    options : frozenset of str
        Keyword options ``construct`` accepts (Python names; the CLI flag of ``per_weight_eps`` is
        ``--per-weight-eps``). :func:`build` refuses any other.
    check : callable, optional
        ``check(options)`` raises an :class:`InputError` for an option value out of range, before any work.
    prepare : callable, optional
        ``prepare(target, **options) -> engine.Prepared`` for the constructions on the one 2L engine: the plan
        of work units that ``strongticket construct --shard I/K`` runs in slices
        (:mod:`strongticket.construct.shard`); None: the construction runs whole only.
    per_layer : frozenset of str
        Options that also take one value per target layer (a list), each checked like a single value.
    """

    name: str
    construct: Callable[..., Ticket]
    paper: str
    summary: str
    options: frozenset[str]
    check: Callable[[Mapping[str, Any]], None] | None = None
    prepare: Callable[..., Any] | None = None
    per_layer: frozenset[str] = frozenset()


def flag(option: str) -> str:
    """The command-line flag of a keyword option: ``per_weight_eps`` -> ``--per-weight-eps``."""
    return "--" + option.replace("_", "-")


#: Options of every 2L construction on the network of :mod:`strongticket.construct.blocks` (``wider_pool``:
#: retry a missed instance with every neuron of its sign in the block).
_TWO_LAYER_OPTIONS = frozenset({"eps", "per_weight_eps", "delta", "samples", "block_size", "seed", "distribution",
                                "wider_pool", "strict", "input_shape", "nonneg_input", "record_target", "log"})

#: Options of the constructions that choose subsets with :func:`strongticket.subsetsum.solve`.
_SUBSET_SUM_OPTIONS = frozenset({"solver", "objective", "time_limit"})

#: Objectives of the subset-sum construction (:func:`strongticket.subsetsum.solve`).
SUBSET_SUM_OBJECTIVES = ("min_error", "sparsest")


def _check_subset_sum(options: Mapping[str, Any]) -> None:
    """``solver`` names a 1-D subset-sum method (or ``auto``) and ``objective`` one the construction uses."""
    from strongticket.subsetsum.registry import names

    solver = options.get("solver")
    if solver is not None and solver != "auto" and solver not in names(one_dim=True):
        raise InputError(f"--solver must be 'auto' or one of {names(one_dim=True)}, got {solver!r}")
    objective = options.get("objective")
    if objective is not None and objective not in SUBSET_SUM_OBJECTIVES:
        raise InputError(f"--objective must be one of {list(SUBSET_SUM_OBJECTIVES)}, got {objective!r}")


CONSTRUCTIONS: Mapping[str, Construction] = MappingProxyType({c.name: c for c in (
    Construction(
        name="pensia", construct=pensia.construct,
        paper="A. Pensia, S. Rajput, A. Nagle, H. Vishwakarma, D. Papailiopoulos, \"Optimal Lottery Tickets via "
              "SubsetSum: Logarithmic Over-Parameterization is Sufficient\", NeurIPS 2020",
        summary="depth-2L random network; each target weight approximated by a subset sum of random products",
        options=_TWO_LAYER_OPTIONS | _SUBSET_SUM_OPTIONS, check=_check_subset_sum, prepare=pensia.prepare),
    Construction(
        name="malach", construct=malach.construct,
        paper="E. Malach, G. Yehudai, S. Shalev-Shwartz, O. Shamir, \"Proving the Lottery Ticket Hypothesis: "
              "Pruning is All You Need\", ICML 2020",
        summary="the same 2L random network; each target weight matched by the single nearest random product",
        options=_TWO_LAYER_OPTIONS, prepare=malach.prepare),
    Construction(
        name="cnn2l", construct=cnn2l.construct,
        paper="A. da Cunha, E. Natale, L. Viennot, \"Proving the Lottery Ticket Hypothesis for Convolutional Neural "
              "Networks\", ICLR 2022",
        summary="depth-2L random CNN; each kernel entry and linear weight approximated by a subset sum",
        options=_TWO_LAYER_OPTIONS | _SUBSET_SUM_OPTIONS, check=_check_subset_sum, prepare=cnn2l.prepare,
        per_layer=frozenset({"per_weight_eps"})),
    Construction(
        name="structured", construct=structured.construct,
        paper="A. da Cunha, F. d'Amore, E. Natale, \"Polynomially Over-Parameterized Convolutional Neural Networks "
              "Contain Structured Strong Winning Lottery Tickets\", NeurIPS 2023",
        summary="depth-2L normal random CNN; whole kernel slices (or channels shared by g outputs, or filters) "
                "chosen by multidimensional subset sum",
        options=frozenset({"per_weight_eps", "block_size", "granularity", "group", "seed", "strict", "nonneg_input",
                           "input_shape", "search_options", "log", "record_target"})),
    Construction(
        name="lplus1", construct=lplus1.construct, paper=lplus1.PAPER,
        summary="depth-(L+1) random network for most activations: a univariate copying first layer, then rho "
                "copies of every target neuron whose weights are subset sums (eps: per-instance tolerance)",
        options=frozenset({"eps", "delta", "rho", "first_rho", "const_rho", "const_groups", "first_scale", "seed",
                           "distribution", "solver", "objective", "time_limit", "strict", "nonneg_input",
                           "input_shape", "record_target", "log", "reference_first_layer"}), check=_check_subset_sum),
)})


def construction(name: str) -> Construction:
    """The construction called ``name``; an :class:`InputError` listing the valid names otherwise."""
    try:
        return CONSTRUCTIONS[name]
    except (KeyError, TypeError):
        raise InputError(f"--method must be one of {sorted(CONSTRUCTIONS)}, got {name!r}") from None


def _count(name: str) -> Callable[[Any], Any]:
    return lambda v: check_int(flag(name), v)


def _switch(name: str, off: str | None = None) -> Callable[[Any], Any]:
    """A check that an on/off option is ``True`` or ``False`` (its flags named: ``--nonneg-input/--signed-input``)."""
    flags = flag(name) + (f"/{off}" if off else "")

    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InputError(f"{flags} must be true or false, got {value!r}")
        return value

    return check


def _check_distribution(value: Any) -> Any:
    """A law by name (``uniform``, ``target-range`` ...: resolved against the target when the construction runs)
    or a :class:`~strongticket.nets.distributions.WeightDistribution` (a library call)."""
    from strongticket.construct.distribution import check_name
    from strongticket.nets.distributions import WeightDistribution

    return value if isinstance(value, WeightDistribution) else check_name(value)


#: Range checks of the options several constructions share, run by :func:`check_options` before any work
#: (values a construction needs the target to judge, such as ``group`` dividing the channels, are checked by
#: the construction itself).
_VALUE_CHECKS: Mapping[str, Callable[[Any], Any]] = MappingProxyType({
    "eps": lambda v: check_unit_open("--eps", v),
    "per_weight_eps": lambda v: check_unit_open("--per-weight-eps", v),
    "delta": lambda v: check_unit_open("--delta", v),
    "time_limit": lambda v: check_positive("--time-limit", v),
    **{name: _count(name) for name in ("samples", "block_size", "rho", "first_rho", "const_rho", "const_groups",
                                       "group")},
    "seed": lambda v: check_int("--seed", v, lo=0),
    "distribution": _check_distribution,
    "nonneg_input": _switch("nonneg_input", "--signed-input"),
    **{name: _switch(name) for name in ("wider_pool", "strict", "reference_first_layer")},
})


def check_options(name: str, options: Mapping[str, Any]) -> Construction:
    """Check ``options`` for construction ``name`` before any work; return its entry.

    Raises
    ------
    InputError
        Unknown construction; an option it does not accept (named by its flag, with the ones it does); an
        option it needs (a keyword of its ``construct`` without a default) missing; both ``eps`` and
        ``per_weight_eps`` (one derives the other); a value its ``check`` refuses.
    """
    entry = construction(name)
    unused = sorted(set(options) - entry.options)
    if unused:
        users = [c.name for c in CONSTRUCTIONS.values() if unused[0] in c.options]
        where = f"; it is used by --method {' or '.join(users)}" if users else ""
        raise InputError(f"{flag(unused[0])} does not apply to --method {name} ({entry.summary}){where}")
    needed = [p.name for p in inspect.signature(entry.construct).parameters.values()
              if p.kind is p.KEYWORD_ONLY and p.default is p.empty and options.get(p.name) is None]
    if needed:
        raise InputError(f"--method {name} needs {' and '.join(flag(n) for n in needed)} ({entry.summary}), got "
                         "none")
    if options.get("eps") is not None and options.get("per_weight_eps") is not None:
        raise InputError(f"give --eps (network error) or --per-weight-eps (error per weight), not both; got "
                         f"--eps {options['eps']!r} and --per-weight-eps {options['per_weight_eps']!r}")
    for key, value in options.items():
        if value is None or key not in _VALUE_CHECKS:
            continue
        if isinstance(value, (list, tuple)):
            if key not in entry.per_layer:
                raise InputError(f"{flag(key)} takes one value for --method {name}, got the list {list(value)!r}")
            for v in value:
                _VALUE_CHECKS[key](v)
        else:
            _VALUE_CHECKS[key](value)
    if entry.check is not None:
        entry.check(options)
    return entry


def build(name: str, target: Any, **options: Any) -> Ticket:
    """Run construction ``name`` on ``target`` with ``options`` (checked first by :func:`check_options`)."""
    return check_options(name, options).construct(target, **options)


__all__ = ["CONSTRUCTIONS", "Construction", "build", "check_options", "construction", "flag"]
