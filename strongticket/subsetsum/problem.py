"""The batched subset-sum problem and its result: the types every solver takes and returns.

A :class:`SubsetSumProblem` holds ``T`` independent instances at once. Instance ``t`` asks for a subset
``S`` of the ``n`` candidates ``candidates[t]`` whose sum approximates ``targets[t]``:

* RSS (one dimension): ``targets (T,)``, ``candidates (T, n)``, error ``|z - sum_S x_i|``;
* MRSS (``d`` dimensions): ``targets (T, d)``, ``candidates (T, n, d)``, error ``||z - sum_S x_i||``
  in the ``linf`` or ``l2`` norm.

Sums and errors in a :class:`SubsetSumResult` are always recomputed from the selection by
:func:`selection_sums` (a float64 sum in candidate order), whatever solver produced the selection, so a
reported error is exactly what anyone recomputing it with that function gets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from strongticket.errors import InputError

Norm = Literal["linf", "l2"]
Objective = Literal["min_error", "sparsest", "fixed_size"]
NORMS: tuple[str, ...] = ("linf", "l2")
#: min_error: the best approximation (ties toward the smaller subset, then the smaller bitmask);
#: sparsest: the fewest candidates with error <= eps (then the smallest error);
#: fixed_size: the best approximation using exactly ``size`` candidates (MILP only).
OBJECTIVES: tuple[str, ...] = ("min_error", "sparsest", "fixed_size")


class Status(enum.IntEnum):
    """Per-instance outcome of a solve.

    OPTIMAL: proven best for the objective. FEASIBLE: a valid selection (within ``eps`` when one was
    asked for) with no proof of optimality. INFEASIBLE: proven that no subset is within ``eps`` (the
    selection is then the best found). TIMEOUT: the time limit hit before a selection within ``eps``
    was found (the selection is the best found, possibly empty). UNKNOWN: a heuristic's result that is
    not within ``eps`` and carries no proof either way.
    """

    OPTIMAL = 0
    FEASIBLE = 1
    INFEASIBLE = 2
    TIMEOUT = 3
    UNKNOWN = 4


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _as_float_array(name: str, value: Any) -> Any:
    """Validate ``value`` as a finite real array: float64 numpy, or float64 torch on its own device."""
    if _is_tensor(value):
        import torch

        if value.dtype == torch.bool or value.is_complex():
            raise InputError(f"{name} must be a real-valued tensor, got dtype {value.dtype}")
        arr = value.detach().to(torch.float64).contiguous()
        finite = torch.isfinite(arr)
        if not bool(finite.all()):
            bad = tuple(int(i) for i in torch.nonzero(~finite)[0])
            raise InputError(f"{name} must be finite, got {arr[bad].item()} at index {bad}")
        return arr
    arr = np.asarray(value)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{name} must be finite, got {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return arr


def check_device(device: str) -> str:
    """``device`` if torch can put a problem's tensors there: ``cpu``, ``cuda`` or ``cuda:N`` with CUDA present.

    Raises
    ------
    InputError
        One line naming ``--device``: a name torch does not know, a device type other than cpu or cuda, or
        CUDA asked for where torch sees none.
    """
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise InputError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device!r} was asked for, but torch sees no CUDA device")
    return device


@dataclass(frozen=True, eq=False)
class SubsetSumProblem:
    """``T`` subset-sum instances solved together.

    Parameters
    ----------
    targets : array, shape (T,) or (T, d)
        The values to approximate, one per instance (vectors for MRSS).
    candidates : array, shape (T, n) or (T, n, d)
        The random samples each instance may sum; float64 after validation.
    norm : {"linf", "l2"}
        Error norm for MRSS (ignored in one dimension, where both are ``|.|``).

    Raises
    ------
    InputError
        For non-finite values, mismatched shapes, an empty batch or an unknown norm.
    """

    targets: np.ndarray
    candidates: np.ndarray
    norm: Norm = "linf"

    def __post_init__(self) -> None:
        z = _as_float_array("targets", self.targets)
        x = _as_float_array("candidates", self.candidates)
        if self.norm not in NORMS:
            raise InputError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if z.ndim not in (1, 2):
            raise InputError(f"targets must have shape (T,) or (T, d), got shape {z.shape}")
        if _is_tensor(z) != _is_tensor(x):
            raise InputError("targets and candidates must both be numpy arrays or both torch tensors, got "
                             f"{type(self.targets).__name__} and {type(self.candidates).__name__}")
        if _is_tensor(x) and z.device != x.device:
            raise InputError(f"targets and candidates must be on the same device, got {z.device} and {x.device}")
        if x.ndim != z.ndim + 1:
            expected = "(T, n)" if z.ndim == 1 else "(T, n, d)"
            raise InputError(f"candidates must have shape {expected} to match targets of shape {z.shape}, "
                             f"got shape {x.shape}")
        if x.shape[0] != z.shape[0]:
            raise InputError(f"candidates and targets must have the same batch size T, got "
                             f"{x.shape[0]} candidate rows and {z.shape[0]} targets")
        if z.ndim == 2 and x.shape[2] != z.shape[1]:
            raise InputError(f"candidate vectors must have the targets' dimension d={z.shape[1]}, got {x.shape[2]}")
        if z.shape[0] == 0:
            raise InputError("the batch is empty: targets has T=0 instances, expected at least one")
        if z.ndim == 2 and z.shape[1] == 0:
            raise InputError("MRSS targets must have dimension d >= 1, got d=0")
        object.__setattr__(self, "targets", z)
        object.__setattr__(self, "candidates", x)

    @property
    def num_instances(self) -> int:
        """T, the number of instances."""
        return int(self.targets.shape[0])

    @property
    def num_candidates(self) -> int:
        """n, the number of candidates per instance."""
        return int(self.candidates.shape[1])

    @property
    def dim(self) -> int:
        """d, the dimension of each target (1 for scalar RSS)."""
        return 1 if self.targets.ndim == 1 else int(self.targets.shape[1])

    @property
    def is_torch(self) -> bool:
        """True when the arrays are torch tensors (solved on their device by torch methods)."""
        return _is_tensor(self.candidates)

    @property
    def device(self) -> str:
        """``"cpu"`` for numpy arrays, else the tensors' device (``"cuda:0"``, ...)."""
        return str(self.candidates.device) if self.is_torch else "cpu"

    def to_numpy(self) -> SubsetSumProblem:
        """The same problem with numpy arrays (a copy from the device if needed)."""
        if not self.is_torch:
            return self
        return SubsetSumProblem(self.targets.cpu().numpy(), self.candidates.cpu().numpy(), self.norm)

    @property
    def multidim(self) -> bool:
        """True for MRSS (targets given as vectors, even of dimension 1)."""
        return self.targets.ndim == 2

    def subset(self, index: np.ndarray | slice) -> SubsetSumProblem:
        """The problem restricted to the instances ``index`` selects."""
        return SubsetSumProblem(self.targets[index], self.candidates[index], self.norm)


def selection_sums(candidates: Any, selection: Any) -> Any:
    """Sum the selected candidates of every instance, in candidate order, in float64.

    Works on numpy arrays or torch tensors (on their device) with bit-identical results.

    Parameters
    ----------
    candidates : array, shape (T, n) or (T, n, d)
    selection : bool array, shape (T, n)

    Returns
    -------
    array, shape (T,) or (T, d)
        ``sums[t] = x[t, i1] + x[t, i2] + ...`` for the selected ``i1 < i2 < ...``, added left to right
        starting from 0.0.
    """
    if _is_tensor(candidates):
        import torch

        x = candidates.to(torch.float64)
        sel = selection.to(device=x.device, dtype=torch.bool)
        out = torch.zeros((x.shape[0],) + tuple(x.shape[2:]), dtype=torch.float64, device=x.device)
        zero = torch.zeros((), dtype=torch.float64, device=x.device)
        for i in range(x.shape[1]):
            s = sel[:, i] if x.ndim == 2 else sel[:, i, None]
            out += torch.where(s, x[:, i], zero)
        return out
    x = np.asarray(candidates, dtype=np.float64)
    sel = np.asarray(selection, dtype=bool)
    out = np.zeros((x.shape[0],) + x.shape[2:], dtype=np.float64)
    for i in range(x.shape[1]):
        s = sel[:, i] if x.ndim == 2 else sel[:, i, None]
        out += np.where(s, x[:, i], 0.0)
    return out


def approximation_errors(targets: Any, sums: Any, norm: Norm = "linf") -> Any:
    """Error of each instance: ``|z - s|`` (1-D) or ``||z - s||`` in ``norm`` (MRSS), shape (T,).

    numpy in, numpy out; torch in, torch out (same arithmetic)."""
    if _is_tensor(sums):
        diff = (targets - sums).abs()
        if diff.ndim == 1:
            return diff
        return diff.amax(dim=1) if norm == "linf" else (diff * diff).sum(dim=1).sqrt()
    diff = np.abs(np.asarray(targets, dtype=np.float64) - sums)
    if diff.ndim == 1:
        return diff
    if norm == "linf":
        return diff.max(axis=1)
    return np.sqrt((diff * diff).sum(axis=1))


@dataclass(frozen=True, eq=False)
class SubsetSumResult:
    """The answer to a :class:`SubsetSumProblem`.

    Attributes
    ----------
    selection : bool array, shape (T, n)
        ``selection[t, i]`` is True when candidate ``i`` of instance ``t`` is in the subset.
    sums : array, shape (T,) or (T, d)
        The selected candidates' sums (:func:`selection_sums`).
    errors : array, shape (T,)
        The approximation errors of those sums (:func:`approximation_errors`).
    status : int8 array, shape (T,)
        A :class:`Status` per instance.
    seconds : float
        Wall time of the solve, in seconds.
    method : str
        The solver that produced the selection.
    lower_bounds : array, shape (T,), optional
        A proven lower bound on the best achievable error per instance, where the method has one
        (exact methods: equal to ``errors``); NaN where none is known.
    info : dict
        Method-specific details (objective, eps, chunking, device, ...).
    """

    selection: np.ndarray
    sums: np.ndarray
    errors: np.ndarray
    status: np.ndarray
    seconds: float
    method: str
    lower_bounds: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_selected(self) -> np.ndarray:
        """Subset size per instance, shape (T,)."""
        return self.selection.sum(axis=1)

    @property
    def gaps(self) -> np.ndarray:
        """``errors - lower_bounds`` per instance (NaN where no lower bound is known), shape (T,)."""
        if self.lower_bounds is None:
            return np.full(self.errors.shape, np.nan)
        return self.errors - self.lower_bounds

    def status_names(self) -> list[str]:
        """The status of every instance as lower-case names."""
        names = [s.name.lower() for s in Status]
        return [names[int(s)] for s in self.status]

    def status_counts(self) -> dict[str, int]:
        """How many instances ended in each status (only the statuses that occur)."""
        values, counts = np.unique(self.status, return_counts=True)
        return {Status(int(v)).name.lower(): int(c) for v, c in zip(values, counts)}
