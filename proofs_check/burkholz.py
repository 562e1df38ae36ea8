"""Burkholz (NeurIPS 2022), "Most Activation Functions Can Win the Lottery Without Excessive Depth":
the first layer per activation (items A3, A4) and the depth-L+1 construction (D21, D22); the
activation constants are cross-checked against :mod:`strongticket.nets.activations`.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp

from proofs_check.core import FAILED, NUMERIC, Outcome, Proof, check

PAPER = "Burkholz 2022"

_x = sp.Symbol("x", real=True)
_Phi = (1 + sp.erf(_x / sp.sqrt(2))) / 2
_sig = 1 / (1 + sp.exp(-_x))
#: activation name -> sympy expression in _x (smooth ones; ReLU/LeakyReLU are piecewise, see below)
SMOOTH = {
    "gelu": _x * _Phi,
    "silu": _x * _sig,
    "softplus": sp.log(1 + sp.exp(_x)),
    "tanh": sp.tanh(_x),
    "sigmoid": _sig,
}


@check(item="A3", paper=f"{PAPER} (L+1, LeakyReLU)")
def leaky_relu_split(seed: int) -> Outcome:
    """LeakyReLU(α), φ(x) = x for x ≥ 0 and α·x for x < 0, α ≥ 0: φ(x) − φ(−x) = (1 + α)·x and
    φ(c·x) = c·φ(x) for c ≥ 0; so the ± split first layer must be rescaled by 1/(1 + α).

    Burkholz (2022), depth-L+1 first layer (the reference code does not rescale: a factor 1 + α = 1.01
    at PyTorch's default α). Proof: case split on sign(x); sympy evaluates the Piecewise.
    """
    a, p, c = sp.Symbol("alpha", nonnegative=True), sp.Symbol("p", positive=True), sp.Symbol("c", positive=True)

    def leaky(t: sp.Expr) -> sp.Expr:
        return sp.Piecewise((t, t >= 0), (a * t, True))

    pr = Proof()
    pr.zero(leaky(p) - leaky(-p) - (1 + a) * p, "x>0")
    pr.zero(leaky(-p) - leaky(p) + (1 + a) * p, "x<0")
    pr.zero(leaky(sp.Integer(0)) - leaky(-sp.Integer(0)), "x=0")
    pr.zero(leaky(c * p) - c * leaky(p), "homogeneity, c>0, x>0")
    pr.zero(leaky(-c * p) - c * leaky(-p), "homogeneity, c>0, x<0")
    pr.zero((leaky(p) - leaky(-p)) / (1 + a) - p, "rescaled by 1/(1+α): exactly x")
    return pr.outcome("case split on sign(x): φ(x) − φ(−x) = (1+α)x and φ(cx) = cφ(x); rescale by 1/(1+α)")


@check(item="A4", paper=f"{PAPER} (L+1, extended to GELU, SiLU, softplus)")
def smooth_split_identity(seed: int) -> Outcome:
    """φ(x) − φ(−x) = x for GELU (x·Φ(x)), SiLU (x·s(x)) and softplus (log(1+eˣ)); equivalently the
    odd part of φ is exactly x/2, so a ± split first layer cancels the even part of the error.

    strongticket's extension of Burkholz (2022) to these activations. Proof: sympy simplifies
    φ(x) − φ(−x) − x to 0 (uses erf(−x) = −erf(x) and s(x) + s(−x) = 1); for softplus, if direct
    simplification fails, d/dx[φ(x) − φ(−x) − x] = 0 and the value at 0 is 0.
    """
    pr = Proof()
    for name in ("gelu", "silu", "softplus"):
        f = SMOOTH[name]
        diff = f - f.subs(_x, -_x) - _x
        if sp.simplify(diff) == 0:
            pr.zero(diff, f"{name}: φ(x) − φ(−x) − x = 0")
        else:
            pr.zero(sp.diff(diff, _x), f"{name}: derivative of φ(x) − φ(−x) − x is 0")
            pr.zero(diff.subs(_x, 0), f"{name}: value at 0 is 0")
    return pr.outcome("GELU, SiLU, softplus: φ(x) − φ(−x) − x simplifies to 0 for real x")


@check(item="A4", paper=f"{PAPER} (L+1, linear regime)")
def linear_regime_constants(seed: int) -> Outcome:
    """φ(0), φ′(0), φ″(0) for the smooth activations, which the L+1 first layer needs (target
    w/(λ·φ′(0)), cancel φ(0) with constant neurons): GELU (0, ½, √(2/π)), SiLU (0, ½, ½),
    softplus (ln 2, ½, ¼), tanh (0, 1, 0), sigmoid (½, ¼, 0); the activation registry
    (:mod:`strongticket.nets.activations`) records the same φ(0) and φ′(0), and a Taylor-remainder constant
    c ≥ |φ″(0)|/2 (a bound c·x² on |φ(x) − φ(0) − φ′(0)x| cannot be smaller near 0).

    strongticket's extension of Burkholz (2022). Proof: sympy differentiates and evaluates at 0; each
    difference to the stated constant simplifies to 0; the registry's floats agree to 1e-15.
    """
    half, quarter = sp.Rational(1, 2), sp.Rational(1, 4)
    expected = {"gelu": (0, half, sp.sqrt(2 / sp.pi)), "silu": (0, half, half), "softplus": (sp.log(2), half, quarter),
                "tanh": (0, 1, 0), "sigmoid": (half, quarter, 0)}
    pr = Proof()
    for name, consts in expected.items():
        f = SMOOTH[name]
        for k, c in enumerate(consts):
            pr.zero(sp.diff(f, _x, k).subs(_x, 0) - c, f"{name}: φ^({k})(0) = {c}")
    from strongticket.nets.activations import activation

    for name, (phi0, dphi0, ddphi0) in expected.items():
        entry = activation(name)
        pr.true(abs(entry.phi0 - float(phi0)) <= 1e-15, f"registry {name}: phi0 = {phi0}")
        pr.true(entry.dphi0 is not None and abs(entry.dphi0 - float(dphi0)) <= 1e-15,
                f"registry {name}: dphi0 = {dphi0}")
        pr.true(entry.remainder is not None and entry.remainder >= abs(float(ddphi0)) / 2 - 1e-15,
                f"registry {name}: remainder >= |φ″(0)|/2")
    return pr.outcome("15 constants: each difference simplifies to 0; the activation registry agrees", None)


def _iv_tanh(y: mpmath.iv.mpf) -> mpmath.iv.mpf:
    return 1 - 2 / (mpmath.iv.exp(2 * y) + 1)


@check(item="A4", paper=f"{PAPER} (L+1, tanh)")
def tanh_taylor_remainder(seed: int) -> Outcome:
    """y − y³/3 ≤ tanh y ≤ y for y ≥ 0, hence |tanh y − y| ≤ |y|³/3 for every real y.

    Burkholz (2022), linear regime of the first layer. Proof: tanh is odd (sympy), so
    take y ≥ 0. g(y) = y − tanh y: g(0) = 0, g′ = tanh² y ≥ 0, so tanh y ≤ y. h(y) = tanh y − y + y³/3:
    h(0) = 0, h′ = (y − tanh y)(y + tanh y) with both factors ≥ 0 (first step; tanh y ≥ 0), so h ≥ 0.
    Cross-check: interval arithmetic (mpmath.iv) at 2000 points of [0, 4].
    """
    y = sp.Symbol("y", nonnegative=True)
    t = sp.tanh(y)
    pr = Proof()
    pr.zero(sp.tanh(-y) + t, "tanh is odd")
    g, h = y - t, t - y + y ** 3 / 3
    pr.zero(g.subs(y, 0), "g(0) = 0")
    pr.zero(sp.diff(g, y) - t ** 2, "g′ = tanh² y")
    pr.true(bool((t ** 2).is_nonnegative), "tanh² y ≥ 0")
    pr.zero(h.subs(y, 0), "h(0) = 0")
    pr.zero(sp.diff(h, y) - (y - t) * (y + t), "h′ = (y − tanh y)(y + tanh y)")
    pr.true(bool(t.is_nonnegative), "tanh y ≥ 0 for y ≥ 0")
    bad = []
    with mpmath.workprec(80):
        for k in range(1, 2001):
            Y = mpmath.iv.mpf(k) / 500
            T = _iv_tanh(Y)
            if not (T.b <= Y.a and (T - Y + Y ** 3 / 3).a >= 0):
                bad.append(k / 500)
    if bad:
        return Outcome(FAILED, f"interval check failed at y = {bad[:5]}")
    return pr.outcome("odd; g = y − tanh y, g(0)=0, g′=tanh²≥0; h = tanh y − y + y³/3, h(0)=0, h′=(y−tanh)(y+tanh)≥0; "
                      "interval cross-check at 2000 points of (0, 4]")


@check(item="A4", paper=f"{PAPER} (L+1, sigmoid)")
def sigmoid_tanh_identity(seed: int) -> Outcome:
    """sigmoid(y) = ½ + ½·tanh(y/2) for every real y.

    Burkholz (2022), sigmoid first layer. Proof: rewrite in exponentials; sympy simplifies
    the difference to 0.
    """
    pr = Proof()
    pr.zero((_sig - sp.Rational(1, 2) - sp.tanh(_x / 2) / 2).rewrite(sp.exp), "sigmoid − ½ − ½ tanh(y/2)")
    return pr.outcome("difference simplifies to 0 after rewriting tanh in exponentials")


@check(item="A4", paper=f"{PAPER} (L+1, sigmoid)")
def sigmoid_taylor_remainder(seed: int) -> Outcome:
    """|sigmoid(y) − ½ − y/4| ≤ |y|³/48 for every real y.

    Burkholz (2022), sigmoid first layer. Proof: sigmoid(y) − ½ − y/4 = ½·(tanh(y/2) − y/2) (sympy), and
    ½·|tanh(y/2) − y/2| ≤ ½·(|y|/2)³/3 = |y|³/48 by tanh_taylor_remainder (sympy checks the constant).
    Cross-check: interval arithmetic at 2000 points of (0, 8].
    """
    y = sp.Symbol("y", real=True)
    s = 1 / (1 + sp.exp(-y))
    pr = Proof()
    pr.zero((s - sp.Rational(1, 2) - y / 4 - (sp.tanh(y / 2) - y / 2) / 2).rewrite(sp.exp),
            "sigmoid(y) − ½ − y/4 = ½(tanh(y/2) − y/2)")
    pr.zero(sp.Rational(1, 2) * (sp.Abs(y) / 2) ** 3 / 3 - sp.Abs(y) ** 3 / 48, "½·(|y|/2)³/3 = |y|³/48")
    bad = []
    with mpmath.workprec(80):
        for k in range(1, 2001):
            Y = mpmath.iv.mpf(k) / 250
            S = 1 / (1 + mpmath.iv.exp(-Y))
            if not ((S - mpmath.iv.mpf(1) / 2 - Y / 4).b <= 0 and (S - mpmath.iv.mpf(1) / 2 - Y / 4 + Y ** 3 / 48).a >= 0):
                bad.append(k / 250)
    if bad:
        return Outcome(FAILED, f"interval check failed at y = {bad[:5]}")
    return pr.outcome("reduces to the tanh bound at y/2 (identity and constant by sympy); interval cross-check "
                      "at 2000 points of (0, 8]")


@check(item="D21", paper=f"{PAPER} (L+1 invariants)")
def lplus1_structure(seed: int) -> Outcome:
    """L+1 structural invariants: univariate layer-1 neurons, hidden widths ρ·(n_l + 1), zero source
    biases in layers ≥ 2, kept weights summing to within ε of w_ij (Burkholz 2022).

    Checked on tickets built by :mod:`strongticket.construct.lplus1` for random targets of random depth (2 to 4),
    widths and activations (tanh, relu, leaky_relu, gelu), read from the masks by ``lplus1.structure``.
    """
    import torch
    from torch import nn

    from strongticket.construct import lplus1

    rng = np.random.default_rng(seed)
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}
    for trial in range(4):
        depth = int(rng.integers(2, 5))
        widths = [int(w) for w in rng.integers(2, 5, size=depth + 1)]
        act = list(acts)[trial % len(acts)]
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(widths[i], widths[i + 1], bias=bool(rng.integers(0, 2))))
            if i < depth - 1:
                layers.append(acts[act]())
        target = nn.Sequential(*layers)
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**31)))
        with torch.no_grad():
            for prm in target.parameters():
                prm.copy_((torch.rand(prm.shape, generator=gen, dtype=prm.dtype) - 0.5) * 0.6)
        ticket = lplus1.construct(target.eval(), eps=0.05, rho=6, seed=trial)
        st = lplus1.structure(ticket)
        problems = [name for name, ok in (
            ("depth L+1", st["depth"] == st["target_depth"] + 1 == depth + 1),
            ("univariate first layer", st["univariate_first_layer"]),
            ("widths rho (n_l + 1)", st["widths"] == st["expected_widths"]),
            ("output multiplicity 1", st["output_multiplicity"] == 1),
            ("no random biases", not st["biases"]),
            ("copies read their own inputs", st["copies_read_own_inputs"])) if not ok]
        if problems:
            return Outcome(FAILED, f"trial {trial} ({act}, widths {widths}): {', '.join(problems)} violated")
    return Outcome(NUMERIC, "4 random targets (depth 2-4, tanh/relu/leaky_relu/gelu, rho = 6): depth L+1, "
                             "univariate first layer, widths rho (n_l + 1), output multiplicity 1, no biases, "
                             "copies read only their own inputs, all read from the masks")


def _rand_frac(rng: np.random.Generator, bound: Fraction, denom: int = 1000) -> Fraction:
    return Fraction(int(rng.integers(-denom, denom + 1)), denom) * bound


@check(item="D22", paper=f"{PAPER} (L+1 error amplification)")
def lplus1_error_amplification(seed: int) -> Outcome:
    """With x̂_{j,k} = x_j + e_{j,k}, |e_{j,k}| ≤ e, |x_j| ≤ B, |v| ≤ 1 and kept subsets S_ij with
    |Σ_{S_ij} v − w_ij| ≤ ε′ (bias likewise from constant neurons 1 + e^c), copy (i, m)'s
    pre-activation error is ≤ Σ_j (ε′B + |S_ij|·e) + ε′ + |S^b|·e^c, and after a λ-Lipschitz
    activation e_l ≤ λ·[n_{l−1}(ε′B + s̄·e) + ε′ + s̄·e^c].

    Our derivation for the depth-L+1 construction of Burkholz (2022) (triangle inequality). Checked in exact rational
    arithmetic on 300 random layers (ReLU and LeakyReLU(α), λ = 1) and on adversarial layers
    (v = ±1, all errors aligned) where the pre-activation bound must hold with equality.
    """
    rng = np.random.default_rng(seed)
    tight = 0
    for trial in range(400):
        adversarial = trial >= 300
        n_in, rho = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        B, e, ec = (Fraction(int(rng.integers(1, 20)), 10) for _ in range(3))
        eps_w = Fraction(int(rng.integers(1, 50)), 1000)
        sgn = 1 if rng.random() < 0.5 else -1
        x = [sgn * B if adversarial else _rand_frac(rng, B) for _ in range(n_in)]
        pre_t, pre_h, bound, s_bar = Fraction(0), Fraction(0), Fraction(0), 0
        for j in range(n_in + 1):  # j = n_in: the bias, fed by constant neurons of value 1
            xj, ej = (x[j], e) if j < n_in else (Fraction(1), ec)
            size = int(rng.integers(0, rho + 1))
            s_bar = max(s_bar, size)
            v = [Fraction(int(rng.choice([-1, 1]))) if adversarial else _rand_frac(rng, Fraction(1)) for _ in range(size)]
            xsign = 1 if xj >= 0 else -1
            # adversarial: every term of the error has the same sign, so the triangle inequality is tight
            rss_err = xsign * eps_w if adversarial else _rand_frac(rng, eps_w)
            w = sum(v, Fraction(0)) - rss_err
            errs = [(ej if vk > 0 else -ej) if adversarial else _rand_frac(rng, ej) for vk in v]
            pre_t += w * xj
            pre_h += sum((vk * (xj + ek) for vk, ek in zip(v, errs)), Fraction(0))
            bound += eps_w * abs(xj) + size * ej if j < n_in else eps_w + size * ec
        err = abs(pre_h - pre_t)
        if err > bound:
            return Outcome(FAILED, f"trial {trial}: pre-activation error {err} > bound {bound}")
        agg = n_in * (eps_w * B + s_bar * e) + eps_w + s_bar * ec
        alpha = Fraction(int(rng.integers(0, 100)), 100)
        for act in (lambda t: max(t, Fraction(0)), lambda t: t if t >= 0 else alpha * t):
            if abs(act(pre_h) - act(pre_t)) > agg:
                return Outcome(FAILED, f"trial {trial}: post-activation error exceeds λ·[n(ε′B + s̄e) + ε′ + s̄e^c] = {agg}")
        if adversarial:
            tight += err == bound
    if tight < 100:
        return Outcome(FAILED, f"adversarial layers met the bound with equality only {tight}/100 times")
    return Outcome(NUMERIC, "300 random + 100 adversarial layers in exact rationals: bound holds; equality attained in "
                            f"{tight}/100 adversarial layers (the bound is tight)", {"tight": tight})


CHECKS = (leaky_relu_split, smooth_split_identity, linear_regime_constants, tanh_taylor_remainder,
          sigmoid_tanh_identity, sigmoid_taylor_remainder, lplus1_error_amplification, lplus1_structure)
