"""Seeded random weights: one generator per parameter tensor, bit-identical on every machine.

A ticket stores a seed, never the random weights (``docs/formats.md``). Each parameter
tensor is drawn from its own CPU ``torch.Generator`` (Mersenne Twister) seeded by
:func:`parameter_seed` ``(seed, name)``: the first 8 bytes of ``sha256(f"{seed}:{name}")``. One tensor can
therefore be regenerated without the others, in any order.

How a draw becomes a weight, so that the same seed gives the same bits everywhere:

1. the generator yields integers ``k`` in ``[0, 2^53)`` (``torch.randint``: one 64-bit Mersenne Twister
   output per integer, a serial and fully specified stream), ``r`` of them per element, element-major;
2. ``u = k * 2^-53`` is an exact float64 in ``[0, 1)``;
3. the law maps ``u`` to a float64 value, which is multiplied (float64) by the law's ``scale`` when it is not
   1, then by the tensor's own scale (:attr:`WeightDistribution.tensor_scales`) when it is not 1, and the
   result is rounded once to float32.

A per-tensor scale is therefore a deterministic multiplication after the draw: it changes neither the
stream nor how many draws a tensor consumes, so every other tensor is unchanged bit for bit, and a law
without tensor scales (every ticket written before they existed) gives the same bits as before.

The uniform family (``uniform``, ``kaiming_uniform``, ``signed_constant``) uses only additions and
multiplications, which IEEE 754 rounds exactly, so its bits are identical on every platform. ``normal``,
``kaiming_normal`` and ``hyperbolic`` also use float64 ``log``/``cos``/``exp``; a platform whose libm differs
in the last float64 bit could flip a float32 rounding, which has probability about 2^-29 per element.

Because elements consume the stream in order, a tensor generated in row chunks (:func:`iter_rows`) is
bit-identical to the tensor generated at once; constructions use that to read a few entries of a huge layer
in bounded memory.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from strongticket.errors import InputError

#: Elements drawn per chunk (bounds the temporary int64/float64 buffers to ~64 MB each).
CHUNK_ELEMENTS = 1 << 23
_TWO_M53 = 2.0 ** -53

#: Laws and their parameters with defaults. ``gain`` multiplies the Kaiming standard deviation.
LAWS: dict[str, dict[str, float]] = {
    "uniform": {"low": -1.0, "high": 1.0},
    "normal": {"mean": 0.0, "std": 1.0},
    "kaiming_uniform": {"gain": math.sqrt(2.0)},
    "kaiming_normal": {"gain": math.sqrt(2.0)},
    "signed_constant": {"gain": math.sqrt(2.0)},
    "hyperbolic": {"low": 1e-3, "high": 1.0},
}
#: Uniform draws consumed per element by each law.
_DRAWS = {"uniform": 1, "normal": 2, "kaiming_uniform": 1, "kaiming_normal": 2, "signed_constant": 1,
          "hyperbolic": 2}


def parameter_seed(seed: int, name: str) -> int:
    """The generator seed of parameter ``name``: first 8 bytes of ``sha256(f"{seed}:{name}")``, 63 bits."""
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def check_seed(seed: Any) -> int:
    """``seed`` as a non-negative int, or an :class:`InputError`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


@dataclass(frozen=True)
class WeightDistribution:
    """A law for random weights: ``name`` (one of :data:`LAWS`), its parameters, a ``scale`` and per-tensor scales.

    Every draw is multiplied by ``scale``, then parameter ``name``'s draws by ``tensor_scales[name]`` (both
    float64, before rounding to float32; a factor of 1 is skipped). ``tensor_scales`` holds ``(name, factor)``
    pairs sorted by name, factors finite and > 0; a parameter it does not name has factor 1. The depth-L+1
    construction uses them to put the copying layer of a smooth activation in its linear regime and to
    compensate in the next layer (:mod:`strongticket.construct.lplus1`).

    Laws
    ----
    ``uniform(low, high)``: U[low, high); Pensia et al. (2020) use U[-1, 1] in the theorem and
    U[min w, max w] of the target in their experiment.
    ``normal(mean, std)``: Box-Muller from two uniforms.
    ``kaiming_uniform(gain)``: U[-b, b] with ``b = gain * sqrt(3 / fan_in)``.
    ``kaiming_normal(gain)``: N(0, (gain / sqrt(fan_in))^2).
    ``signed_constant(gain)``: ``+-gain / sqrt(fan_in)`` with a fair random sign (Ramanujan et al. 2020).
    ``hyperbolic(low, high)``: the law of Orseau, Hutter, Rivasplata (2020): density proportional to 1/|w|
    on ``low <= |w| <= high`` (log-uniform magnitude) with a fair random sign. (Support recalled, not
    verified against the paper.)
    """

    name: str = "uniform"
    params: tuple[tuple[str, float], ...] = ()
    scale: float = 1.0
    tensor_scales: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.name not in LAWS:
            raise InputError(f"distribution must be one of {sorted(LAWS)}, got {self.name!r}")
        given = dict(self.params)
        unknown = set(given) - set(LAWS[self.name])
        if unknown:
            raise InputError(f"distribution {self.name!r} takes parameters {sorted(LAWS[self.name])}, "
                             f"got {sorted(unknown)}")
        full = {**LAWS[self.name], **{k: float(v) for k, v in given.items()}}
        for k, v in full.items():
            if not math.isfinite(v):
                raise InputError(f"distribution parameter {k} must be finite, got {v}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"scale must be a finite number > 0, got {self.scale!r}")
        if self.name in ("uniform",) and not full["low"] < full["high"]:
            raise InputError(f"uniform needs low < high, got low={full['low']}, high={full['high']}")
        if self.name == "hyperbolic" and not 0 < full["low"] < full["high"]:
            raise InputError(f"hyperbolic needs 0 < low < high, got low={full['low']}, high={full['high']}")
        if self.name == "normal" and not full["std"] > 0:
            raise InputError(f"normal needs std > 0, got {full['std']}")
        if self.name.startswith(("kaiming", "signed")) and not full["gain"] > 0:
            raise InputError(f"{self.name} needs gain > 0, got {full['gain']}")
        object.__setattr__(self, "params", tuple(sorted(full.items())))
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "tensor_scales", _check_tensor_scales(self.tensor_scales))

    # ----- constructors ----------------------------------------------------------------------
    @classmethod
    def uniform(cls, low: float = -1.0, high: float = 1.0, scale: float = 1.0) -> WeightDistribution:
        """U[low, high) times ``scale``."""
        return cls("uniform", (("low", low), ("high", high)), scale)

    @classmethod
    def normal(cls, mean: float = 0.0, std: float = 1.0, scale: float = 1.0) -> WeightDistribution:
        """N(mean, std^2) times ``scale``."""
        return cls("normal", (("mean", mean), ("std", std)), scale)

    @classmethod
    def kaiming_uniform(cls, gain: float = math.sqrt(2.0)) -> WeightDistribution:
        """U[-b, b], ``b = gain * sqrt(3 / fan_in)``."""
        return cls("kaiming_uniform", (("gain", gain),))

    @classmethod
    def kaiming_normal(cls, gain: float = math.sqrt(2.0)) -> WeightDistribution:
        """N(0, gain^2 / fan_in)."""
        return cls("kaiming_normal", (("gain", gain),))

    @classmethod
    def signed_constant(cls, gain: float = math.sqrt(2.0)) -> WeightDistribution:
        """``+-gain / sqrt(fan_in)``."""
        return cls("signed_constant", (("gain", gain),))

    @classmethod
    def hyperbolic(cls, low: float = 1e-3, high: float = 1.0, scale: float = 1.0) -> WeightDistribution:
        """Density proportional to 1/|w| on ``low <= |w| <= high``, random sign."""
        return cls("hyperbolic", (("low", low), ("high", high)), scale)

    def with_tensor_scales(self, scales: Mapping[str, float]) -> WeightDistribution:
        """The same law with ``tensor_scales`` replaced by ``scales`` (factors of exactly 1 are dropped)."""
        return WeightDistribution(self.name, self.params, self.scale,
                                  tuple((n, f) for n, f in scales.items() if f != 1.0))

    def tensor_scale(self, name: str) -> float:
        """The factor parameter ``name``'s draws are multiplied by after ``scale`` (1 when not listed)."""
        return dict(self.tensor_scales).get(name, 1.0)

    # ----- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"name", "params", "scale"}`` plus ``"tensor_scales": {name: factor}`` when there are any; JSON-able.

        Without tensor scales the dict is exactly what it was before they existed, so older tickets and
        their readers are unaffected.
        """
        out: dict[str, Any] = {"name": self.name, "params": dict(self.params), "scale": self.scale}
        if self.tensor_scales:
            out["tensor_scales"] = dict(self.tensor_scales)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightDistribution:
        """Inverse of :meth:`to_dict`; a missing ``tensor_scales`` means every factor is 1."""
        if not isinstance(data, Mapping) or "name" not in data:
            raise InputError(f"a distribution must be a mapping with a 'name', got {data!r}")
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise InputError(f"distribution params must be a mapping, got {params!r}")
        scales = data.get("tensor_scales", {})
        if not isinstance(scales, Mapping):
            raise InputError(f"distribution tensor_scales must be a mapping of parameter name to factor, "
                             f"got {scales!r}")
        return cls(str(data["name"]), tuple(params.items()), float(data.get("scale", 1.0)),
                   tuple(scales.items()))

    @property
    def bound(self) -> float | None:
        """The largest |w| the law can produce for ``fan_in``-free laws (None for unbounded laws).

        Tensor scales are not included: see :meth:`bound_of`.
        """
        p = dict(self.params)
        if self.name == "uniform":
            return self.scale * max(abs(p["low"]), abs(p["high"]))
        if self.name == "hyperbolic":
            return self.scale * p["high"]
        return None

    def bound_of(self, name: str) -> float | None:
        """:attr:`bound` times parameter ``name``'s tensor scale (None for unbounded laws)."""
        b = self.bound
        return None if b is None else b * self.tensor_scale(name)

    def sign_probabilities(self) -> tuple[float, float]:
        """``(P(w > 0), P(w < 0))`` of one draw (exact for every law; ``scale > 0`` keeps signs).

        A 2L construction needs, per input, enough first-layer weights of each sign it uses; the block
        size that makes that likely follows from these (:func:`strongticket.construct.blocks.block_size_for`).
        """
        p = dict(self.params)
        if self.name == "uniform":
            lo, hi = p["low"], p["high"]
            pos = min(1.0, max(0.0, hi / (hi - lo)))
            neg = min(1.0, max(0.0, -lo / (hi - lo)))
            return pos, neg
        if self.name == "normal":
            pos = 0.5 * math.erfc(-p["mean"] / (p["std"] * math.sqrt(2.0)))
            return pos, 1.0 - pos
        return 0.5, 0.5  # symmetric laws: kaiming_*, signed_constant, hyperbolic

    # ----- drawing ---------------------------------------------------------------------------
    def _map(self, u: np.ndarray, fan_in: int, factor: float = 1.0) -> np.ndarray:
        """Map uniforms ``u`` of shape (N, r) in [0, 1) to float64 values of shape (N,), times ``scale`` then
        ``factor`` (a tensor scale)."""
        p = dict(self.params)
        if self.name == "uniform":
            v = p["low"] + (p["high"] - p["low"]) * u[:, 0]
        elif self.name == "kaiming_uniform":
            b = p["gain"] * math.sqrt(3.0 / fan_in)
            v = -b + (2.0 * b) * u[:, 0]
        elif self.name == "signed_constant":
            c = p["gain"] / math.sqrt(fan_in)
            v = np.where(u[:, 0] < 0.5, -c, c)
        elif self.name in ("normal", "kaiming_normal"):
            z = np.sqrt(-2.0 * np.log1p(-u[:, 0])) * np.cos((2.0 * math.pi) * u[:, 1])
            if self.name == "normal":
                v = p["mean"] + p["std"] * z
            else:
                v = (p["gain"] / math.sqrt(fan_in)) * z
        else:  # hyperbolic
            lo, hi = math.log(p["low"]), math.log(p["high"])
            mag = np.exp(lo + (hi - lo) * u[:, 0])
            v = np.where(u[:, 1] < 0.5, -mag, mag)
        v = v * self.scale if self.scale != 1.0 else v
        return v * factor if factor != 1.0 else v

    def _draw(self, gen: torch.Generator, count: int, fan_in: int, factor: float = 1.0) -> np.ndarray:
        r = _DRAWS[self.name]
        k = torch.randint(0, 1 << 53, (count, r), generator=gen, dtype=torch.int64).numpy()
        return self._map(k.astype(np.float64) * _TWO_M53, fan_in, factor).astype(np.float32)

    def iter_rows(self, name: str, shape: tuple[int, ...], seed: int, *, fan_in: int | None = None,
                  chunk_elements: int = CHUNK_ELEMENTS) -> Iterator[torch.Tensor]:
        """Yield parameter ``name`` in chunks of whole rows (first dimension), float32 on CPU.

        The chunks concatenated along dim 0 equal :meth:`tensor` bit for bit. ``name``'s tensor scale applies.
        """
        seed = check_seed(seed)
        factor = self.tensor_scale(name)
        shape = tuple(int(s) for s in shape)
        fan_in = _default_fan_in(shape) if fan_in is None else int(fan_in)
        gen = torch.Generator(device="cpu").manual_seed(parameter_seed(seed, name))
        rows = shape[0] if shape else 1
        row_size = math.prod(shape[1:]) if len(shape) > 1 else 1
        step = max(1, chunk_elements // max(row_size, 1))
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            values = self._draw(gen, (stop - start) * row_size, fan_in, factor)
            yield torch.from_numpy(values).reshape((stop - start,) + shape[1:])

    def tensor(self, name: str, shape: tuple[int, ...], seed: int, *, fan_in: int | None = None) -> torch.Tensor:
        """Parameter ``name`` of ``shape`` drawn for ``seed``: a float32 CPU tensor.

        ``fan_in`` (for the Kaiming and signed-constant laws) defaults to ``prod(shape[1:])``.
        """
        shape = tuple(int(s) for s in shape)
        chunks = list(self.iter_rows(name, shape, seed, fan_in=fan_in))
        out = chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=0)
        return out.reshape(shape)

    def generate(self, spec: Any, seed: int, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Every parameter of ``spec`` (a :class:`~strongticket.nets.spec.NetSpec`), or only ``names``.

        Returns ``{name: float32 CPU tensor}`` in the spec's parameter order; move them to a device after.
        """
        shapes = spec.parameter_shapes()
        if names is not None:
            missing = [n for n in names if n not in shapes]
            if missing:
                raise InputError(f"spec has no parameters {missing}; it has {list(shapes)}")
            shapes = {n: shapes[n] for n in names}
        return {n: self.tensor(n, s, seed, fan_in=spec.fan_in(n)) for n, s in shapes.items()}


def _check_tensor_scales(scales: Any) -> tuple[tuple[str, float], ...]:
    """``scales`` (pairs or a mapping) as sorted ``(name, float)`` pairs, or an :class:`InputError`."""
    items = scales.items() if isinstance(scales, Mapping) else scales
    try:
        pairs = [(n, f) for n, f in items]
    except (TypeError, ValueError):
        raise InputError(f"tensor_scales must map parameter names to factors, got {scales!r}") from None
    out: dict[str, float] = {}
    for n, f in pairs:
        if not isinstance(n, str) or not n:
            raise InputError(f"tensor_scales keys must be parameter names (non-empty strings), got {n!r}")
        if n in out:
            raise InputError(f"tensor_scales names parameter {n!r} twice")
        if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(f) and f > 0):
            raise InputError(f"tensor_scales[{n!r}] must be a finite number > 0, got {f!r}")
        out[n] = float(f)
    return tuple(sorted(out.items()))


def _default_fan_in(shape: tuple[int, ...]) -> int:
    return max(1, math.prod(shape[1:])) if len(shape) > 1 else max(1, shape[0] if shape else 1)
