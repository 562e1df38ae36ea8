"""Measured approximation error of a ticket: sampled inputs and projected gradient ascent.

Both return ``sup_x |f(x) - g(x)|_2`` over the inputs they try, a lower bound on the true sup that the
certified bound of :mod:`strongticket.verify.certified` must dominate. Computation is in float64 by default
so that measured errors are the construction's, not float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.spec import NetSpec
from strongticket.ticket import Ticket

DOMAINS = ("sphere", "ball", "box", "box_nonneg")


def target_module(ticket: Ticket, dtype: torch.dtype = torch.float64) -> nn.Module:
    """The target recorded in ``ticket`` (``provenance["target"]`` + ``arrays["target.*"]``), in eval mode."""
    info = ticket.provenance.get("target", {})
    if "spec" not in info:
        raise InputError("the ticket records no target spec; pass the target module explicitly")
    spec = NetSpec.from_dict(info["spec"])
    state = {k[len("target."):]: v for k, v in ticket.arrays.items() if k.startswith("target.")}
    if set(state) != set(spec.parameter_shapes()):
        raise InputError("the ticket does not store the target's weights (constructed with record_target=False); "
                         "pass the target module explicitly")
    module = spec.build(dtype=dtype)
    module.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    return module.eval()


def input_shape(ticket: Ticket) -> tuple[int, ...]:
    """Shape of one input of the ticket (and of its target), without the batch dimension or constant channel.

    The ticket's spec's ``input_shape`` if it records one, else the target's, else ``(d,)`` from the first
    ``Linear`` layer's input width; an :class:`InputError` when none of them tells.
    """
    spec = ticket.spec
    if spec.input_shape is None:
        shape = ticket.provenance.get("target", {}).get("spec", {}).get("input_shape")
        if shape is None:
            first = spec.layers[1] if len(spec.layers) > 1 else spec.layers[0]
            d = getattr(first, "in_features", None)
            if d is None:
                raise InputError("cannot tell the ticket's input shape")
            return (d - int(spec.input_constant),)
        return tuple(shape)
    return spec.input_shape


def sample_inputs(shape: tuple[int, ...], count: int, domain: str, generator: torch.Generator,
                  radius: float = 1.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``count`` inputs of ``shape``: uniform on the sphere or in the ball of ``radius`` (l2 over all entries),
    or uniform in the box ``[-radius, radius]`` (``box``) or ``[0, radius]`` (``box_nonneg``) entrywise (l_inf)."""
    if domain not in DOMAINS:
        raise InputError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if domain.startswith("box"):
        u = torch.rand((count,) + tuple(shape), generator=generator, dtype=torch.float64)
        return (radius * (u if domain == "box_nonneg" else 2 * u - 1)).to(dtype)
    x = torch.randn((count,) + tuple(shape), generator=generator, dtype=torch.float64)
    flat = x.reshape(count, -1)
    flat = flat / flat.norm(dim=1, keepdim=True)
    if domain == "ball":
        r = torch.rand(count, 1, generator=generator, dtype=torch.float64) ** (1.0 / flat.shape[1])
        flat = flat * r
    return (radius * flat).reshape(x.shape).to(dtype)


@dataclass(frozen=True)
class Measured:
    """A measured error: the worst ``|f(x) - g(x)|`` found (l2 or l_inf), its mean over the inputs tried, and how
    many."""

    sup: float
    mean: float
    count: int


@torch.no_grad()
def error_on(f: nn.Module, g: nn.Module, x: torch.Tensor, batch: int = 512, norm: str = "l2") -> Measured:
    """``|f(x) - g(x)|`` over the rows of ``x`` (in batches), in the ``l2`` or ``linf`` norm of the outputs."""
    if norm not in ("l2", "linf"):
        raise InputError(f"norm must be 'l2' or 'linf', got {norm!r}")
    order = 2 if norm == "l2" else float("inf")
    sup, total = 0.0, 0.0
    for s in range(0, x.shape[0], batch):
        diff = (f(x[s:s + batch]) - g(x[s:s + batch])).reshape(min(batch, x.shape[0] - s), -1)
        e = torch.linalg.vector_norm(diff, ord=order, dim=1)
        sup = max(sup, float(e.max()))
        total += float(e.sum())
    return Measured(sup, total / max(1, x.shape[0]), int(x.shape[0]))


def empirical_error(ticket: Ticket, target: nn.Module | None = None, *, domain: str = "sphere",
                    count: int = 1000, radius: float = 1.0, data: torch.Tensor | None = None, seed: int = 0,
                    dtype: torch.dtype = torch.float64, module: nn.Module | None = None, norm: str = "l2") -> Measured:
    """Sup of ``|f(x) - g(x)|`` (``norm``) over ``count`` random inputs of the ``domain``, or the rows of ``data``."""
    f = target_module(ticket, dtype) if target is None else target.to(dtype).eval()
    g = ticket.to_module(dtype) if module is None else module
    if data is not None:
        return error_on(f, g, data.to(dtype), norm=norm)
    gen = torch.Generator().manual_seed(int(seed))
    return error_on(f, g, sample_inputs(input_shape(ticket), count, domain, gen, radius, dtype), norm=norm)


def adversarial_error(ticket: Ticket, target: nn.Module | None = None, *, radius: float = 1.0,
                      restarts: int = 4, steps: int = 50, lr: float = 0.05, batch: int = 16, seed: int = 0,
                      dtype: torch.dtype = torch.float64, module: nn.Module | None = None) -> Measured:
    """Projected gradient ascent on ``|f(x) - g(x)|_2`` in the ball ``|x| <= radius``.

    ``restarts`` rounds, each from ``batch`` random points on the sphere; Adam steps of size ``lr * radius``,
    then projection back onto the ball. Returns the worst error found over all iterates.
    """
    f = target_module(ticket, dtype) if target is None else target.to(dtype).eval()
    g = ticket.to_module(dtype) if module is None else module
    for p in list(f.parameters()) + list(g.parameters()):
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(int(seed))
    shape = input_shape(ticket)
    best, total, tried = 0.0, 0.0, 0
    for _ in range(restarts):
        x = sample_inputs(shape, batch, "sphere", gen, radius, dtype).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=lr * radius)
        for _step in range(steps):
            err = (f(x) - g(x)).reshape(batch, -1).norm(dim=1)
            best = max(best, float(err.detach().max()))
            opt.zero_grad()
            (-err.sum()).backward()
            opt.step()
            with torch.no_grad():
                flat = x.reshape(batch, -1)
                norms = flat.norm(dim=1, keepdim=True).clamp_min(radius)
                flat.mul_(radius / norms)
        with torch.no_grad():
            err = (f(x) - g(x)).reshape(batch, -1).norm(dim=1)
            best = max(best, float(err.max()))
            total += float(err.sum())
            tried += batch
    return Measured(best, total / max(1, tried), tried)
