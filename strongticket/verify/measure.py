"""Measured approximation error of a ticket: sampled inputs and projected gradient ascent.

Both return ``sup_x |f(x) - g(x)|_2`` over the inputs they try, a lower bound on the true sup that the
certified bound of :mod:`strongticket.verify.certified` must dominate. Computation is in float64 by default
so that measured errors are the construction's, not float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.ticket import Ticket, recorded_target

DOMAINS = ("sphere", "ball", "box", "box_nonneg")
#: Input sets of the adversarial search: the l2 ball, its non-negative part, the l_inf box and its non-negative half.
ADVERSARIAL_DOMAINS = ("ball", "ball_nonneg", "box", "box_nonneg")


def target_module(ticket: Ticket, dtype: torch.dtype = torch.float64) -> nn.Module:
    """The target recorded in ``ticket`` (``provenance["target"]`` + ``arrays["target.*"]``), in eval mode."""
    traced = recorded_target(ticket)
    module = traced.spec.build(dtype=dtype)
    module.load_state_dict({k: v.to(dtype) for k, v in traced.state.items()})
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


#: Rows per evaluation batch of :func:`error_on` and :func:`compare_on` (a row's float64 result can differ in its
#: last bits between batch sizes, so the batch is a function of the networks alone: :func:`evaluation_batch`).
MAX_BATCH = 512
#: Bytes the widest layer (its input, its output and a convolution's unfolded input) may take in one evaluation
#: batch. At 512 rows the 2L CNN of LeNet-5 (53.6 M random parameters) peaked at 12 GB: its 5x5 convolution over
#: 1617 channels unfolds 32 MB of float64 per row.
EVAL_BYTES = 1 << 30


@torch.no_grad()
def evaluation_batch(modules: Sequence[nn.Module], row: torch.Tensor, budget: int | None = None) -> int:
    """Rows per batch for evaluating ``modules`` on inputs like ``row`` (shape (1, ...)): :data:`MAX_BATCH`, or
    the largest power of two at which every layer's input, output and (convolutions) unfolded input fit in
    ``budget`` bytes (default :data:`EVAL_BYTES`; at least 1 row).

    Measured by one forward pass of ``row`` through each module with hooks on its leaf modules; it depends on the
    networks and the input shape and dtype only, so a report's numbers do not depend on the machine.
    """
    widest = 0

    def hook(m: nn.Module, inp: tuple[Any, ...], out: Any) -> None:
        nonlocal widest
        tensors = [t for t in (*inp, out) if isinstance(t, torch.Tensor)]
        size = sum(t.numel() * t.element_size() for t in tensors)
        if isinstance(m, nn.Conv2d) and isinstance(out, torch.Tensor):
            # the convolution's unfolded input (im2col): in_channels/groups · kernel area per output position
            kh, kw = m.kernel_size
            size += (m.in_channels // m.groups) * kh * kw * out.shape[-2] * out.shape[-1] * out.element_size()
        widest = max(widest, size)

    for m in modules:
        handles = [leaf.register_forward_hook(hook) for leaf in m.modules() if not list(leaf.children())]
        try:
            m(row)
        finally:
            for h in handles:
                h.remove()
    budget = EVAL_BYTES if budget is None else budget
    batch = MAX_BATCH
    while batch > 1 and batch * widest > budget:
        batch //= 2
    return batch


def _norm_order(norm: str) -> float:
    """The ``ord`` of :func:`torch.linalg.vector_norm` for an output norm ``"l2"`` or ``"linf"``."""
    if norm not in ("l2", "linf"):
        raise InputError(f"norm must be 'l2' or 'linf', got {norm!r}")
    return 2 if norm == "l2" else float("inf")


def _row_errors(fx: torch.Tensor, gx: torch.Tensor, order: float) -> torch.Tensor:
    """``|f(x) - g(x)|`` per row of a batch of outputs, shape (batch,)."""
    return torch.linalg.vector_norm((fx - gx).reshape(fx.shape[0], -1), ord=order, dim=1)


@dataclass(frozen=True)
class OnData:
    """Target and ticket on labelled inputs, from one evaluation of each: both accuracies and the output error."""

    target_accuracy: float
    ticket_accuracy: float
    error: Measured


@torch.no_grad()
def compare_on(f: nn.Module, g: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int | None = None,
               norm: str = "l2") -> OnData:
    """Accuracies of ``f`` and ``g`` on ``(x, y)`` and ``|f(x) - g(x)|`` (``norm``), each network run once per row.

    The numbers of :func:`strongticket.verify.accuracy.accuracy` for ``f`` and ``g`` and of :func:`error_on`,
    with both networks evaluated once instead of twice (``x`` is cast to ``f``'s dtype, as they cast it).
    ``batch``: rows per evaluation (default :func:`evaluation_batch`).
    """
    order = _norm_order(norm)
    dtype = next(f.parameters()).dtype
    if batch is None:
        batch = evaluation_batch((f, g), x[:1].to(dtype)) if x.shape[0] else MAX_BATCH
    sup, total, right_f, right_g = 0.0, 0.0, 0, 0
    for s in range(0, x.shape[0], batch):
        xb, yb = x[s:s + batch].to(dtype), y[s:s + batch]
        fx, gx = f(xb), g(xb)
        right_f += int((fx.argmax(dim=1) == yb).sum())
        right_g += int((gx.argmax(dim=1) == yb).sum())
        e = _row_errors(fx, gx, order)
        sup = max(sup, float(e.max()))
        total += float(e.sum())
    n = max(1, x.shape[0])
    return OnData(right_f / n, right_g / n, Measured(sup, total / n, int(x.shape[0])))


@torch.no_grad()
def error_on(f: nn.Module, g: nn.Module, x: torch.Tensor, batch: int | None = None, norm: str = "l2") -> Measured:
    """``|f(x) - g(x)|`` over the rows of ``x`` (in batches of ``batch`` rows, default :func:`evaluation_batch`),
    in the ``l2`` or ``linf`` norm of the outputs."""
    order = _norm_order(norm)
    if batch is None:
        batch = evaluation_batch((f, g), x[:1]) if x.shape[0] else MAX_BATCH
    sup, total = 0.0, 0.0
    for s in range(0, x.shape[0], batch):
        e = _row_errors(f(x[s:s + batch]), g(x[s:s + batch]), order)
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
                      dtype: torch.dtype = torch.float64, module: nn.Module | None = None, domain: str = "ball",
                      norm: str = "l2", start: torch.Tensor | None = None) -> Measured:
    """Projected gradient ascent on ``|f(x) - g(x)|`` (output ``norm``) over the inputs of ``domain``.

    The steepest ascent of the domain's own norm (projected gradient ascent of Madry et al. 2018), steps of size
    ``lr * radius``: ``domain="ball"``, the l2 ball ``|x|_2 <= radius``, normalised-gradient steps, then
    projection back onto the ball (``"ball_nonneg"``: onto its part with ``x >= 0``, clamping then scaling,
    which is the exact projection onto that cone-ball intersection); ``domain="box"`` / ``"box_nonneg"``, the box ``|x|_inf <= radius`` (or its
    non-negative half, e.g. images in ``[0, R]``), signed-gradient steps, then clamping into the box. ``restarts`` rounds, each from
    ``batch`` points: the rows of ``start`` (projected into the domain) for the first round when given, random
    points of the domain otherwise (on the sphere for the ball). Returns the worst error over all iterates,
    a lower bound on the sup that a certified bound must dominate.
    """
    if domain not in ADVERSARIAL_DOMAINS:
        raise InputError(f"domain must be one of {ADVERSARIAL_DOMAINS}, got {domain!r}")
    order = _norm_order(norm)
    f = target_module(ticket, dtype) if target is None else target.to(dtype).eval()
    g = ticket.to_module(dtype) if module is None else module
    for p in list(f.parameters()) + list(g.parameters()):
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(int(seed))
    shape = input_shape(ticket)
    lo = 0.0 if domain == "box_nonneg" else -radius

    def project(x: torch.Tensor) -> None:
        with torch.no_grad():
            if domain.startswith("ball"):
                if domain == "ball_nonneg":
                    x.clamp_(min=0.0)
                flat = x.reshape(x.shape[0], -1)
                flat.mul_(radius / flat.norm(dim=1, keepdim=True).clamp_min(radius))
            else:
                x.clamp_(lo, radius)

    def error(x: torch.Tensor) -> torch.Tensor:
        return _row_errors(f(x), g(x), order)

    best, total, tried = 0.0, 0.0, 0
    for round_ in range(restarts):
        if round_ == 0 and start is not None:
            x = start.reshape((-1, *shape))[:batch].to(dtype).clone()
            project(x)
        else:
            x = sample_inputs(shape, batch, "sphere" if domain.startswith("ball") else domain, gen, radius, dtype)
            project(x)
        x.requires_grad_(True)
        for _step in range(steps):
            err = error(x)
            best = max(best, float(err.detach().max()))
            (grad,) = torch.autograd.grad(err.sum(), x)
            with torch.no_grad():
                if domain.startswith("ball"):
                    flat = grad.reshape(grad.shape[0], -1)
                    grad = (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-300)).reshape(grad.shape)
                else:
                    grad = grad.sign()
                x.add_(lr * radius * grad)
            project(x)
        with torch.no_grad():
            err = error(x)
            best = max(best, float(err.max()))
            total += float(err.sum())
            tried += x.shape[0]
    return Measured(best, total / max(1, tried), tried)
