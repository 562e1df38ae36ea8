"""Latency and memory of a compacted ticket against the masked random network it came from and the target.

:func:`benchmark_compact` times the three modules of one ticket on the same random inputs: the compacted
dense CNN (:meth:`strongticket.ticket.Ticket.compact`), the random network with its masks applied
(:meth:`~strongticket.ticket.Ticket.to_module`) and, when the ticket records it, the target. Each
configuration runs ``warmup`` untimed forward passes, then ``repeats`` timed ones; the median is reported,
never the best or the mean, because these machines are shared. Memory: the bytes of each module's parameters
and buffers, and on CUDA the peak device memory of the timed passes (``torch.cuda.max_memory_allocated``);
a CPU peak of the activations is not measured.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.validation import check_int, check_generator_seed


def _module_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


@torch.no_grad()
def _time(module: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> tuple[float, int | None]:
    cuda = x.device.type == "cuda"
    for _ in range(warmup):
        module(x)
    if cuda:
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        module(x)
        if cuda:
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - start)
    peak = int(torch.cuda.max_memory_allocated(x.device)) if cuda else None
    return statistics.median(times), peak


def benchmark_compact(ticket: Any, *, batches: tuple[int, ...] = (1, 256), repeats: int = 20, warmup: int = 3,
                      device: str = "cpu", seed: int = 0) -> list[dict[str, Any]]:
    """Median forward latency of the compacted ticket, the masked random network and the target.

    Parameters
    ----------
    ticket : Ticket
        A ticket of univariate 2L pairs (``structured`` or ``cnn2l``) with an input shape.
    batches : tuple of int >= 1
        Batch sizes to time.
    repeats, warmup : int
        Timed and untimed forward passes per (module, batch).
    device : str
        ``cpu`` or a CUDA device (``cuda``, ``cuda:N``).
    seed : int
        Seed of the random inputs (uniform in [0, 1], images).

    Returns
    -------
    list of dict
        One row per (module, batch): ``module``, ``batch``, ``median_ms``, ``speedup_vs_masked`` (the masked
        random network's median over this one's), ``params`` (nonzero for the masked network: its kept
        weights), ``module_bytes``, ``peak_device_bytes`` (CUDA only, else None), ``device``.
    """
    from strongticket.compact import compact_module, num_parameters
    from strongticket.verify.measure import target_module

    for b in batches:
        check_int("--batches", b)
    check_int("--repeats", repeats)
    check_int("warmup", warmup, lo=0)
    seed = check_generator_seed("--seed", seed)
    if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise InputError(f"--device must be cpu, or cuda[:N] on a machine with CUDA, got {device!r}")
    shape = ticket.spec.input_shape
    if shape is None:
        raise InputError("the ticket records no input shape: it cannot be timed on generated inputs")
    dev = torch.device(device)
    masked = ticket.to_module(torch.float32).to(dev).eval()
    compact = compact_module(ticket, torch.float32).to(dev).eval()
    modules: dict[str, tuple[nn.Module, int]] = {"compact": (compact, num_parameters(compact)),
                                                 "masked random network": (masked, ticket.num_kept)}
    if "target" in ticket.provenance:
        target = target_module(ticket, torch.float32).to(dev).eval()
        modules["target"] = (target, num_parameters(target))
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for b in batches:
        x = torch.rand((b, *shape), generator=gen).to(dev)
        timed = {name: _time(m, x, warmup, repeats) for name, (m, _) in modules.items()}
        base = timed["masked random network"][0]
        for name, (m, params) in modules.items():
            median, peak = timed[name]
            rows.append({"module": name, "batch": b, "median_ms": 1e3 * median, "speedup_vs_masked": base / median,
                         "params": params, "module_bytes": _module_bytes(m), "peak_device_bytes": peak,
                         "device": str(dev)})
    return rows


__all__ = ["benchmark_compact"]
