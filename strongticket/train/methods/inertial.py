"""Inertial-manifold pruning: a RECONSTRUCTION from the abstract of Zhang, Wang, Ling, Wen, Liu 2021, "Validating
the Lottery Ticket Hypothesis with Inertial Manifold Theory" (NeurIPS).

Only the paper's abstract was available: it grounds the lottery ticket hypothesis in inertial-manifold theory
(the training dynamics are attracted to a low-dimensional invariant manifold) and proposes to train a few SGD
iterations towards a local minimum, prune once, and train the subnetwork, instead of IMP's repeated rounds.
Everything below that sentence is this package's natural reading of it, not the paper's algorithm:

1. ``sgd``: the dense network takes ``im_steps`` optimiser steps on the ordinary schedule (a phase cut short by
   a callback that stops the loop at that step; the phase's checkpoint records the step, so a killed run
   resumes it). If one phase of ``optim.epochs`` epochs has fewer steps, it stops at its end and the summary
   says so (``inertial.note``).
2. The Hessian of the training loss at that point, averaged over ``im_batches`` batches of the ``score``
   stream (:meth:`RunContext.score_data`), with respect to every trainable parameter (biases included: the
   dynamics live in the whole parameter space), is probed by ``im_lanczos`` Lanczos steps on Hessian-vector
   products (:mod:`strongticket.train.lanczos`; the network in eval mode). Its dominant eigenspace, the reading
   of "the low-dimensional manifold the dynamics are attracted to", has size ``k`` at the largest (shifted)
   relative spectral gap among the top ``im_max_rank`` eigenvalues (:func:`~strongticket.train.lanczos.gap_rank`). Why
   the top of the Hessian spectrum: after a few steps, gradient descent moves mostly inside the span of the
   top Hessian eigenvectors, whose number is about the number of classes (Gur-Ari, Roberts, Dyer 2018,
   "Gradient Descent Happens in a Tiny Subspace").
3. Each prunable weight ``i`` is scored by its energy in that eigenspace, ``s_i = sum_{j<=k} λ_j v_j[i]^2``:
   the diagonal of the rank-``k`` Hessian ``V_k Λ_k V_k^T``, i.e. the curvature of the loss along weight
   ``i``'s axis that the dominant subspace carries. Weighting by ``λ_j`` (rather than the unweighted leverage
   ``sum_j v_j[i]^2``) makes a direction count by its curvature, so the score changes continuously when a
   small eigenvalue enters or leaves the chosen subspace. The mask keeps the top ``density`` fraction of the
   scores (global by default).
4. ``train``: the subnetwork trains for ``optim.epochs`` epochs from the weights reached at step 1 (no
   rewinding; the schedule starts afresh). That model is the run's result.
5. ``magnitude-control``: in the same run, the one-shot magnitude mask at the same point and density trains
   from the same weights on the same schedule, so the reconstruction is judged by a number:
   ``inertial.test_accuracy`` against ``inertial.magnitude_test_accuracy`` in ``summary.json``.

The Lanczos pass counts in the run's wall time as the ``lanczos`` entry of ``phases``. It is recomputed on
resume (it is a deterministic function of the checkpointed weights and the seed).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch

from strongticket.errors import InputError
from strongticket.train.lanczos import gap_rank, hessian_vector_product, lanczos
from strongticket.train.loop import evaluate
from strongticket.train.masking import MaskedModel, Masks, mask_from_scores
from strongticket.train.methods.base import Method, magnitude_scores
from strongticket.train.methods.isp import StopAt

RECONSTRUCTION = "reconstruction from the abstract of Zhang et al. 2021 (the paper's algorithm was not available)"
SPECTRUM_SHOWN = 10  # eigenvalues recorded in summary.json (all of them go to metrics.jsonl)


def energy_scores(eigenvalues: torch.Tensor, eigenvectors: torch.Tensor, k: int) -> torch.Tensor:
    """Energy of every coordinate in the top-``k`` eigenspace: ``sum_{j<k} λ_j v_j[i]^2``.

    Parameters
    ----------
    eigenvalues : torch.Tensor
        ``(m,)`` eigenvalues, largest first.
    eigenvectors : torch.Tensor
        ``(dim, m)`` unit eigenvectors, column ``j`` paired with ``eigenvalues[j]``.
    k : int
        Size of the eigenspace, 1 <= k <= m.

    Returns
    -------
    torch.Tensor
        ``(dim,)`` scores: the diagonal of ``V_k diag(λ_k) V_k^T``.
    """
    if not 1 <= k <= eigenvalues.numel():
        raise InputError(f"k must be in [1, {eigenvalues.numel()}], got {k}")
    return (eigenvectors[:, :k] ** 2 * eigenvalues[:k].to(eigenvectors.dtype)).sum(1)


def mask_agreement(a: Masks, b: Masks) -> float:
    """Fraction of the entries kept by ``a`` that ``b`` keeps too (equal kept counts: a symmetric overlap)."""
    kept = sum(int(m.sum()) for m in a.values())
    both = sum(int((a[n] & b[n].to(a[n].device)).sum()) for n in a)
    return both / kept if kept else 1.0


class Inertial(Method):
    """A few SGD steps, a dominant Hessian eigenspace by Lanczos, one-shot energy pruning, training; magnitude
    control at the same point (a reconstruction, see the module docstring)."""

    name = "inertial"
    paper = "Zhang et al. 2021, Validating the LTH with Inertial Manifold Theory (reconstruction from the abstract)"

    def check(self) -> None:  # noqa: D102
        c = self.cfg
        if c.im_max_rank >= c.im_lanczos:
            raise InputError(f"--im-max-rank must be below --im-lanczos (the gap after the last eigenvalue "
                             f"considered needs the next one), got {c.im_max_rank} and {c.im_lanczos}")

    def run(self, ctx):  # noqa: D102
        c = self.cfg
        net = ctx.new_net()
        names = ctx.prunable(net)
        info: dict[str, Any] = {"reconstruction": RECONSTRUCTION}
        res = ctx.train("sgd", MaskedModel(net), callbacks=[StopAt(c.im_steps)])
        info["sgd_steps"] = res["step"]
        info["sgd_test_accuracy"] = res.get("accuracy")
        if res["step"] < c.im_steps:
            info["note"] = (f"one phase of optim.epochs has {res['step']} steps, fewer than --im-steps "
                            f"{c.im_steps}: pruned after {res['step']}")
            if ctx.note is not None and ctx.is_main:
                ctx.note(f"inertial: {info['note']}")
        control_net = copy.deepcopy(net)  # the weights at the pruning point, for the magnitude control

        started = time.perf_counter()
        all_names = [n for n, p in net.named_parameters() if p.requires_grad]
        hvp, dim = hessian_vector_product(net, all_names, list(ctx.score_data(c.im_batches)))
        lz = lanczos(hvp, dim, c.im_lanczos, ctx.generator("lanczos"), device=ctx.device)
        top = lz.eigenvalues[: c.im_max_rank + 1]
        k = gap_rank(top, c.im_max_rank)
        flat = energy_scores(lz.eigenvalues, lz.eigenvectors, k)
        params = dict(net.named_parameters())
        offsets, start = {}, 0
        for n in all_names:
            offsets[n] = start
            start += params[n].numel()
        scores = {n: flat[offsets[n]:offsets[n] + params[n].numel()].reshape(params[n].shape).float()
                  for n in names}
        ctx.phases["lanczos"] = {"seconds": time.perf_counter() - started, "hvps": len(lz.eigenvalues) * c.im_batches}
        masks = mask_from_scores(scores, c.density, c.scope)
        magnitude = mask_from_scores(magnitude_scores(net, names), c.density, c.scope)
        eig = [float(x) for x in lz.eigenvalues]
        ctx.log({"event": "inertial_spectrum", "eigenvalues": eig, "rank": k, "hessian_dim": dim,
                 "residuals": [float(x) for x in lz.residuals[:k]]})
        ctx.log_masks("prune", masks)
        ctx.log_masks("magnitude-control", magnitude)
        info |= {"hessian_dim": dim, "lanczos_iterations": len(eig), "rank": k,
                 "eigenvalues": eig[:SPECTRUM_SHOWN],
                 "gap_ratio": eig[k - 1] / eig[k] if k < len(eig) and eig[k] > 0 else None,
                 "max_residual": float(lz.residuals[:k].max()),
                 "mask_agreement": mask_agreement(masks, magnitude)}

        model = MaskedModel(net, masks)
        control = MaskedModel(control_net, magnitude)
        info["pruned_test_accuracy"] = evaluate(model, ctx.data.test_x, ctx.data.test_y)["accuracy"]
        info["magnitude_pruned_test_accuracy"] = evaluate(control, ctx.data.test_x, ctx.data.test_y)["accuracy"]
        info["test_accuracy"] = ctx.train("train", model).get("accuracy")
        info["magnitude_test_accuracy"] = ctx.train("magnitude-control", control).get("accuracy")
        ctx.extras["inertial"] = info
        return model
