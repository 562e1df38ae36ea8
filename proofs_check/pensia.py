"""Pensia, Rajput, Nagle, Vishwakarma, Papailiopoulos (NeurIPS 2020), "Optimal Lottery Tickets via
SubsetSum": the ReLU identities behind the 2-layer block, the error propagation through depth and
the per-weight budget (items A1, A2, D17, D18, D19, D20).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
import sympy as sp

from proofs_check.core import FAILED, NUMERIC, Outcome, Proof, check

PAPER = "Pensia et al. 2020"


def relu(t: sp.Expr) -> sp.Expr:
    return sp.Max(t, 0)


@check(item="A1", paper=f"{PAPER} (construction)")
def relu_split(seed: int) -> Outcome:
    """σ(x) − σ(−x) = x for every real x (σ = ReLU).

    Used by Pensia et al. (2020, Fig. 1), Orseau et al. (2020) and Burkholz (2022, first layer).
    Proof: case split x > 0, x < 0, x = 0; in each case sympy evaluates the Max and the
    difference simplifies to 0.
    """
    p = sp.Symbol("p", positive=True)
    pr = Proof()
    pr.zero(relu(p) - relu(-p) - p, "x = p > 0")
    pr.zero(relu(-p) - relu(p) + p, "x = -p < 0")
    pr.zero(relu(sp.Integer(0)) - relu(-sp.Integer(0)), "x = 0")
    return pr.outcome("case split x>0, x<0, x=0: σ(x) − σ(−x) − x simplifies to 0 in each case")


@check(item="A1", paper=f"{PAPER} (construction)")
def relu_homogeneity(seed: int) -> Outcome:
    """σ(c·x) = c·σ(x) for c ≥ 0; hence σ(a·x) = a·σ(x) for a > 0 and σ(a·x) = |a|·σ(−x) for a < 0.

    Pensia et al. (2020), the construction: what turns pruning into subset sum over products.
    Proof: case split on the sign of x (and of a); sympy evaluates each Max under the assumptions.
    """
    p, c = sp.Symbol("p", positive=True), sp.Symbol("c", nonnegative=True)
    a = sp.Symbol("a", positive=True)
    pr = Proof()
    pr.zero(relu(c * p) - c * relu(p), "c ≥ 0, x > 0")
    pr.zero(relu(-c * p) - c * relu(-p), "c ≥ 0, x < 0")
    pr.zero(relu(a * p) - a * relu(p), "a > 0, x > 0")
    pr.zero(relu(-a * p) - a * relu(-p), "a > 0, x < 0")
    pr.zero(relu(-a * p) - a * relu(-p), "a < 0 (a = −a'), x > 0: σ(a x) = |a| σ(−x)")
    pr.zero(relu(a * p) - a * relu(p), "a < 0 (a = −a'), x < 0: σ(a x) = |a| σ(−x)")
    return pr.outcome("case split on sign(x) and sign(a); every case simplifies to 0")


@check(item="A2", paper=f"{PAPER} Fig. 1")
def block_identity(seed: int) -> Outcome:
    """Pruned 2-layer block is exact: for masks S⁺ ⊆ {u > 0}, S⁻ ⊆ {u < 0},
    Σ_{S⁺∪S⁻} v_i σ(u_i x) = (Σ_{S⁺} v_i u_i)·σ(x) − (Σ_{S⁻} v_i u_i)·σ(−x).

    Pensia et al. (2020, Fig. 1). Proof: termwise (the sum of termwise identities is the identity):
    v σ(u x) = v u σ(x) for u > 0 and v σ(u x) = −v u σ(−x) for u < 0, each by a case split on x.
    """
    up, un_abs, v = sp.Symbol("u", positive=True), sp.Symbol("a", positive=True), sp.Symbol("v", real=True)
    un = -un_abs
    p = sp.Symbol("p", positive=True)
    pr = Proof()
    for x, name in ((p, "x>0"), (-p, "x<0"), (sp.Integer(0), "x=0")):
        pr.zero(v * relu(up * x) - v * up * relu(x), f"u>0, {name}")
        pr.zero(v * relu(un * x) - (-v * un * relu(-x)), f"u<0, {name}")
    return pr.outcome("termwise identity for u>0 and u<0, each by a case split on sign(x); summing gives the block")


@check(item="A2", paper=f"{PAPER} Fig. 1")
def block_error_bound(seed: int) -> Outcome:
    """|block(x) − w·x| ≤ max(|A − w|, |B − w|)·|x| with A = Σ_{S⁺} v u, B = Σ_{S⁻} v u.

    Pensia et al. (2020), the construction. Proof: block(x) = A σ(x) − B σ(−x) (block_identity);
    for x > 0, block(x) − w x = (A − w)·x; for x < 0, block(x) − w x = (B − w)·x; sympy shows both
    differences are 0, and |(A−w)x| ≤ max(..)|x|, |(B−w)x| ≤ max(..)|x|.
    """
    A, B, w = sp.symbols("A B w", real=True)
    p = sp.Symbol("p", positive=True)

    def block(x: sp.Expr) -> sp.Expr:
        return A * relu(x) - B * relu(-x)

    pr = Proof()
    pr.zero(block(p) - w * p - (A - w) * p, "x>0: block − wx = (A−w)x")
    pr.zero(block(-p) - w * (-p) - (B - w) * (-p), "x<0: block − wx = (B−w)x")
    pr.zero(block(sp.Integer(0)), "x=0: block = 0")
    return pr.outcome("x>0 gives (A−w)x, x<0 gives (B−w)x, x=0 gives 0; so the error is ≤ max(|A−w|,|B−w|)|x|")


@check(item="D17", paper=f"{PAPER} Thm 1 (error propagation)")
def error_recurrence_closed_form(seed: int) -> Outcome:
    """e_i ≤ η_i(1 + e_{i−1}) + e_{i−1} implies 1 + e_L ≤ Π_i (1 + η_i) ≤ exp(Σ_i η_i).

    Our derivation of Pensia et al. (2020, Thm 1) error propagation (see ``docs/constructions.md``).
    Proof: η(1+e) + e = (1+η)(1+e) − 1 (sympy: difference is 0), so the recurrence reads
    1 + e_i ≤ (1 + η_i)(1 + e_{i−1}); induction on i gives the product (checked for L = 1..6 that
    the product solves the recurrence with equality). 1 + η ≤ e^η: g(η) = e^η − 1 − η has g(0) = 0
    and g'(η) = e^η − 1 = ∫_0^η e^t dt ≥ 0 for η ≥ 0 (sympy decides each step).
    """
    eta, e = sp.Symbol("eta", nonnegative=True), sp.Symbol("e", nonnegative=True)
    pr = Proof()
    pr.zero(eta * (1 + e) + e - ((1 + eta) * (1 + e) - 1), "η(1+e)+e = (1+η)(1+e) − 1")
    etas = sp.symbols("eta1:7", nonnegative=True)
    E = sp.Integer(0)
    for i, eta_i in enumerate(etas, start=1):
        nxt = eta_i * (1 + E) + E
        E = sp.prod([1 + t for t in etas[:i]]) - 1
        pr.zero(nxt - E, f"L={i}: Π(1+η)−1 solves the recurrence with equality")
    g = sp.exp(eta) - 1 - eta
    pr.zero(g.subs(eta, 0), "g(0) = 0")
    t = sp.Symbol("t", real=True)
    pr.zero(sp.diff(g, eta) - sp.integrate(sp.exp(t), (t, 0, eta)), "g'(η) = e^η − 1 = ∫_0^η e^t dt")
    pr.true(bool(sp.exp(t).is_positive), "e^t > 0, so g'(η) ≥ 0 for η ≥ 0")
    return pr.outcome("1+e_i ≤ (1+η_i)(1+e_{i−1}) (identity), induction (L=1..6 checked), 1+η ≤ e^η (g(0)=0, g'≥0)")


@check(item="D17", paper=f"{PAPER} Thm 1 (error propagation)")
def per_weight_budget(seed: int) -> Outcome:
    """ε′ = ε/(2L·√(d_in d_out)) per weight gives η_i ≤ ε/(2L) and e_L ≤ e^{ε/2} − 1 ≤ ε for 0 ≤ ε ≤ 1;
    the ℓ∞ variant ε′ = ε/(2L·d_max) gives e_L ≤ (1 + d_max ε′)^L − 1 ≤ ε as well.

    Our derivation for Pensia et al. (2020, Thm 1). Proof: η_i ≤ ε′√(d_{i−1}d_i)
    ≤ ε′√(d_in d_out) = ε/(2L) (sympy: equality at d_{i−1}d_i = d_in d_out); (1+ε/(2L))^L ≤ e^{ε/2}
    (1+t ≤ e^t, see error_recurrence_closed_form); h(ε) = e^{ε/2} − 1 − ε is convex (h'' > 0),
    h(0) = 0 and h(1) = √e − 2 < 0, so h ≤ 0 on [0, 1].
    """
    eps, L, din, dout = sp.symbols("epsilon L d_in d_out", positive=True)
    dmax = sp.Symbol("d_max", positive=True)
    epsp = eps / (2 * L * sp.sqrt(din * dout))
    pr = Proof()
    pr.zero(epsp * sp.sqrt(din * dout) - eps / (2 * L), "η_i = ε′√(d_in d_out) = ε/(2L)")
    pr.zero(dmax * eps / (2 * L * dmax) - eps / (2 * L), "ℓ∞: d_max·ε/(2L d_max) = ε/(2L)")
    pr.zero(sp.log((1 + eps / (2 * L)) ** L) - L * sp.log(1 + eps / (2 * L)),
            "log (1+ε/2L)^L = L·log(1+ε/2L) ≤ L·ε/(2L)")
    h = sp.exp(eps / 2) - 1 - eps
    pr.true(sp.diff(h, eps, 2) > 0, "h'' = e^{ε/2}/4 > 0 (convex)")
    pr.zero(h.subs(eps, 0), "h(0) = 0")
    pr.true(h.subs(eps, 1) < 0, "h(1) = √e − 2 < 0")
    return pr.outcome("η_i ≤ ε/(2L); (1+ε/2L)^L ≤ e^{ε/2}; e^{ε/2} − 1 ≤ ε on [0,1] by convexity; same for ℓ∞")


def _ticket_layer(W: np.ndarray, Ep: np.ndarray, Em: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pensia's pruned block with per-weight errors: (W+E⁺)σ(x) − (W+E⁻)σ(−x), batched over rows of x."""
    return np.maximum(x, 0) @ (W + Ep).T - np.maximum(-x, 0) @ (W + Em).T


def _forward(Ws: list[np.ndarray], x: np.ndarray, Eps: list[tuple[np.ndarray, np.ndarray]] | None) -> list[np.ndarray]:
    outs = []
    for i, W in enumerate(Ws):
        y = x @ W.T if Eps is None else _ticket_layer(W, *Eps[i], x)
        x = y if i == len(Ws) - 1 else np.maximum(y, 0)
        outs.append(x)
    return outs


def _random_net(rng: np.random.Generator, norm: str) -> list[np.ndarray]:
    L = int(rng.integers(1, 5))
    dims = [int(d) for d in rng.integers(1, 9, size=L + 1)]
    Ws = []
    for i in range(L):
        W = rng.standard_normal((dims[i + 1], dims[i]))
        if norm == "spectral":
            W /= np.linalg.norm(W, 2) * (1 + 1e-12)
        else:  # every row has ℓ1-norm ≤ 1
            W /= np.maximum(np.abs(W).sum(axis=1, keepdims=True), 1.0) * (1 + 1e-12)
        Ws.append(W)
    return Ws


def _inputs(rng: np.random.Generator, d: int, norm: str, Ws: list[np.ndarray]) -> np.ndarray:
    if norm == "spectral":
        x = rng.standard_normal((3000, d))
        _, _, vt = np.linalg.svd(Ws[0])
        x = np.vstack([x, vt, -vt, np.eye(d), -np.eye(d)])
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    k = min(d, 10)
    verts = ((np.arange(2 ** k)[:, None] >> np.arange(k)) & 1) * 2.0 - 1.0
    verts = np.hstack([verts, rng.choice([-1.0, 1.0], size=(2 ** k, d - k))])
    return np.vstack([verts, rng.uniform(-1, 1, size=(1000, d))])


def _propagation_check(seed: int, norm: str, trials: int) -> Outcome:
    rng = np.random.default_rng(seed)
    worst_ratio, worst_layer_slack = 0.0, math.inf
    for _ in range(trials):
        Ws = _random_net(rng, norm)
        L = len(Ws)
        dims = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]
        eps = float(rng.uniform(0.01, 1.0))
        if norm == "spectral":
            eps_w = eps / (2 * L * max(math.sqrt(dims[i] * dims[i + 1]) for i in range(L)))
            etas = [eps_w * math.sqrt(dims[i] * dims[i + 1]) for i in range(L)]
        else:
            eps_w = eps / (2 * L * max(dims))
            etas = [eps_w * dims[i] for i in range(L)]
        # Vertex perturbations (±ε′) are the worst case of a box; mix them with interior ones.
        Eps = [tuple(eps_w * (rng.choice([-1.0, 1.0], size=W.shape) if rng.random() < 0.7
                              else rng.uniform(-1, 1, size=W.shape)) for _ in range(2)) for W in Ws]
        x = _inputs(rng, dims[0], norm, Ws)
        xs, xh = _forward(Ws, x, None), _forward(Ws, x, Eps)
        ordn = 2 if norm == "spectral" else np.inf
        e_prev = np.zeros(len(x))
        for i in range(L):
            e_i = np.linalg.norm(xh[i] - xs[i], ord=ordn, axis=1)
            bound_i = etas[i] * (1 + e_prev) + e_prev
            slack = float(np.min(bound_i - e_i))
            worst_layer_slack = min(worst_layer_slack, slack)
            if slack < -1e-12:
                return Outcome(FAILED, f"{norm}: layer {i + 1} of {dims}: e_i exceeds η_i(1+e_(i−1))+e_(i−1) by {-slack:.3g}")
            e_prev = e_i
        e_L = float(e_prev.max())
        closed = math.prod(1 + t for t in etas) - 1
        if e_L > closed + 1e-12 or closed > math.expm1(sum(etas)) + 1e-15 or e_L > eps:
            return Outcome(FAILED, f"{norm}: dims {dims}, ε={eps:.3g}: sup error {e_L:.3g} vs Π(1+η)−1 = {closed:.3g}")
        worst_ratio = max(worst_ratio, e_L / closed if closed > 0 else 0.0)
    return Outcome(NUMERIC, f"{trials} random targets (depth 1–4, widths 1–8), ε′ from the budget: sup error ≤ "
                            f"Π(1+η_i)−1 ≤ ε at every sampled input; tightest e_L/bound = {worst_ratio:.3f}",
                   {"trials": trials, "max_error_over_bound": worst_ratio})


@check(item="D17", paper=f"{PAPER} Thm 1 (error propagation)")
def fc_spectral_random_networks(seed: int) -> Outcome:
    """On random targets with ‖W_i‖₂ ≤ 1 and ‖x‖₂ ≤ 1, a ticket whose blocks have per-weight errors
    ≤ ε′ = ε/(2L·max√(d_{i−1}d_i)) (separately for σ(x) and σ(−x), as Pensia's ± split gives) has
    e_i ≤ η_i(1+e_{i−1}) + e_{i−1} at every layer and sup-error ≤ Π(1+η_i) − 1 ≤ ε.

    Pensia et al. (2020, Thm 1). Inputs: 3000 random points of the unit sphere plus the
    right singular vectors of W_1 and the coordinate axes (both signs). Sampling can only miss a
    violation, never invent one, so this is a numeric check, not a proof.
    """
    return _propagation_check(seed, "spectral", trials=60)


@check(item="D18", paper=f"{PAPER} Thm 1 (ℓ∞ variant)")
def fc_linf_random_networks(seed: int) -> Outcome:
    """If every target row has ℓ1-norm ≤ 1 and ‖x‖_∞ ≤ 1, per-weight errors ≤ ε′ give
    e_L ≤ (1 + d_max·ε′)^L − 1 (in ‖·‖_∞), and ε′ = ε/(2L·d_max) gives e_L ≤ ε.

    Our ℓ1/ℓ∞ variant of Pensia et al. (2020, Thm 1). Inputs: all cube vertices in the first
    min(d, 10) coordinates (random signs in the rest) plus 1000 random points of the cube.
    """
    return _propagation_check(seed, "linf", trials=60)


@check(item="D19", paper=f"{PAPER} Thm 1 (width)")
def width_formula(seed: int) -> Outcome:
    """The ticket's hidden width equals d_{i−1} × (block size per input), every hidden neuron is univariate,
    and every target weight keeps at most n candidates per sign (Pensia et al. 2020 Thm 1).

    Checked on a ticket built by ``strongticket.construct.pensia`` for a random 5-4-3 target; the success
    rate's union bound is a statistical property (proofs_check --slow, C14), not checked here.
    """
    built = _small_pensia_ticket(seed)
    target, ticket, n = built
    H = int(ticket.provenance["block_size"])
    layers = [m for m in target if isinstance(m, nn.Linear)]
    for i, lin in enumerate(layers):
        d_in, d_out = lin.in_features, lin.out_features
        first = ticket.masks[f"layers.{2 * i}.weight"]   # (d_in*H, d_in)
        second = ticket.masks[f"layers.{2 * i + 1}.weight"]  # (d_out, d_in*H)
        if first.shape != (d_in * H, d_in) or second.shape != (d_out, d_in * H):
            return Outcome(FAILED, f"block {i}: shapes {tuple(first.shape)}, {tuple(second.shape)}; expected "
                                   f"({d_in * H}, {d_in}) and ({d_out}, {d_in * H}) for block size {H}")
        owner = torch.arange(d_in * H) // H
        off_block = first.clone()
        off_block[torch.arange(d_in * H), owner] = False
        if off_block.any():
            return Outcome(FAILED, f"block {i}: a hidden neuron keeps a weight from an input outside its block")
        per_block = second.reshape(d_out, d_in, H).sum(dim=2)
        if int(per_block.max()) > 2 * n:
            return Outcome(FAILED, f"block {i}: a target weight keeps {int(per_block.max())} > 2n = {2 * n} candidates")
    return Outcome(NUMERIC, f"5-4-3 target, n={n}: widths d_in×{H}, univariate hidden neurons, ≤ n candidates "
                            "per sign for every target weight")


@check(item="D20", paper=f"{PAPER}; Burkholz 2022 (depth)")
def ticket_depth(seed: int) -> Outcome:
    """Pensia tickets have exactly 2L layers; Burkholz's L+1 tickets are checked once they exist."""
    built = _small_pensia_ticket(seed)
    target, ticket, _ = built
    L = sum(isinstance(m, nn.Linear) for m in target)
    depth = len(ticket.spec.layers)
    if depth != 2 * L:
        return Outcome(FAILED, f"Pensia ticket of a depth-{L} target has {depth} layers, expected {2 * L}")
    return Outcome(NUMERIC, f"depth-{L} target → {depth}-layer ticket (2L); L+1 constructions not built yet")


def _small_pensia_ticket(seed: int) -> tuple[nn.Module, Any, int]:
    """(target, ticket, n) for a random 5-4-3 ReLU target and its Pensia ticket (n = 12 samples per weight)."""
    from strongticket.construct import pensia  # here, so that a broken construction fails only these checks
    gen = torch.Generator().manual_seed(seed)
    target = nn.Sequential(nn.Linear(5, 4, bias=False), nn.ReLU(), nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        for m in target:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) - 0.5)
    n = 12
    ticket = pensia.construct(target, per_weight_eps=0.05, samples=n, seed=seed, strict=False, record_target=False)
    return target, ticket, n


@check(item="D17", paper=f"{PAPER} Thm 1 vs strongticket.subsetsum.theory")
def theory_per_weight_eps(seed: int) -> Outcome:
    """``theory.pensia_per_weight_eps(eps, num_layers, d_in, d_out)`` is at most ε/(2L√(d_in d_out)),
    the budget per_weight_budget proves sufficient (smaller is also sufficient; larger is unproved).
    """
    from strongticket.subsetsum.theory import pensia_per_weight_eps as fn
    ratios = []
    for eps in (0.99, 0.5, 0.1, 0.01, 1e-4):  # theory takes eps in the open interval (0, 1)
        for L in (1, 2, 5):
            for din, dout in ((1, 1), (3, 7), (784, 300), (100, 10)):
                got = float(fn(eps, L, din, dout))
                ours = eps / (2 * L * math.sqrt(din * dout))
                if not (0 < got <= ours * (1 + 1e-12)):
                    return Outcome(FAILED, f"pensia_per_weight_eps({eps}, {L}, {din}, {dout}) = {got:.6g} exceeds the "
                                           f"proved budget ε/(2L√(d_in d_out)) = {ours:.6g}")
                ratios.append(got / ours)
    return Outcome(NUMERIC, f"60 grid points: theory value ≤ proved budget; ratio in [{min(ratios):.3g}, {max(ratios):.3g}]",
                   {"min_ratio": min(ratios), "max_ratio": max(ratios)})


CHECKS = (relu_split, relu_homogeneity, block_identity, block_error_bound, error_recurrence_closed_form,
          per_weight_budget, fc_spectral_random_networks, fc_linf_random_networks, theory_per_weight_eps,
          width_formula, ticket_depth)
