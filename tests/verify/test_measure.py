"""Measured errors: the adversarial searches of :mod:`strongticket.verify.measure` on a function whose sup is known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strongticket.verify import measure
from strongticket.verify.measure import adversarial_error
from tests.verify.test_report import _cnn_ticket


def _linear_gap(seed: int, rows: int = 1) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """A zero target and a linear "ticket" on 1x8x8 inputs: the output gap is ``W x`` (one row: a single local
    maximum over a box, so the ascent must reach the global one)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, 64, generator=g, dtype=torch.float64)
    zero = nn.Sequential(nn.Flatten(), nn.Linear(64, rows, bias=False)).double()
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, rows, bias=False)).double()
    with torch.no_grad():
        zero[1].weight.zero_()
        lin[1].weight.copy_(w)
    return zero, lin, w


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_ascent_reaches_the_known_sup_and_never_leaves_the_box(seed):
    """sup over |x|_inf <= R of |w . x| is R |w|_1 (a corner): the signed-gradient ascent finds it
    and, projected into the box, never reports more."""
    ticket = _cnn_ticket(False)
    zero, lin, w = _linear_gap(seed)
    exact = 0.5 * float(w.abs().sum(dim=1).max())
    found = adversarial_error(ticket, zero, module=lin, radius=0.5, restarts=1, steps=45, batch=4, seed=seed,
                              domain="box", norm="linf").sup
    assert found == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_nonneg_box_ascent_reaches_the_known_sup(seed):
    """Over 0 <= x <= R: sup |w . x| = R max(sum of w's positive entries, -sum of its negative ones)."""
    ticket = _cnn_ticket(True)
    zero, lin, w = _linear_gap(seed)
    exact = 2.0 * float(torch.maximum(w.clamp_min(0).sum(1), (-w).clamp_min(0).sum(1)).max())
    found = adversarial_error(ticket, zero, module=lin, radius=2.0, restarts=1, steps=45, batch=4, seed=seed,
                              domain="box_nonneg", norm="linf").sup
    assert found == pytest.approx(exact, rel=1e-12)


def test_ball_ascent_stays_in_the_ball():
    """Over |x|_2 <= R, sup |W x|_2 = R sigma_max(W); the ascent approaches it from below, never above."""
    ticket = _cnn_ticket(False)
    zero, lin, w = _linear_gap(3, rows=3)
    exact = 1.5 * float(torch.linalg.matrix_norm(w, ord=2))
    found = adversarial_error(ticket, zero, module=lin, radius=1.5, restarts=2, steps=200, batch=4, seed=0).sup
    assert exact * 0.99 <= found <= exact * (1 + 1e-12)


def test_ascent_improves_on_its_starting_points():
    """On a real CNN ticket, 30 ascent steps find a larger l_inf gap than the random starting points alone."""
    ticket = _cnn_ticket(True, bias=True)
    start = adversarial_error(ticket, radius=1.0, restarts=1, steps=1, batch=8, seed=0, domain="box_nonneg",
                              norm="linf").sup
    ascended = adversarial_error(ticket, radius=1.0, restarts=1, steps=30, batch=8, seed=0, domain="box_nonneg",
                                 norm="linf").sup
    assert ascended > start


def test_bad_domain_is_one_line():
    with pytest.raises(Exception, match="domain must be one of"):
        adversarial_error(_cnn_ticket(False), domain="sphere")


def test_evaluation_batch_keeps_the_widest_layer_within_the_budget():
    wide = nn.Sequential(nn.Linear(10, 1000), nn.ReLU(), nn.Linear(1000, 3))
    row = torch.zeros(1, 10)
    assert measure.evaluation_batch([wide], row) == measure.MAX_BATCH  # 8 kB a row: 512 rows fit in 1 GiB
    # the widest leaf: the ReLU, 1000 in + 1000 out float32 = 8000 bytes a row; 7 rows fit in 56 000, so 4
    assert measure.evaluation_batch([wide], row, budget=56_000) == 4
    assert measure.evaluation_batch([wide], row, budget=10) == 1
    assert measure.evaluation_batch([wide.double()], row.double(), budget=56_000) == 2  # float64: twice the bytes


def test_evaluation_batch_counts_a_convolutions_unfolded_input():
    # 16 channels in, 5x5 kernel, 8x8 output: 16·25·64 unfolded values a row, far more than input and output
    conv = nn.Conv2d(16, 2, 5)
    row = torch.zeros(1, 16, 12, 12)
    per_row = (16 * 144 + 2 * 64 + 16 * 25 * 64) * 4
    assert measure.evaluation_batch([conv], row, budget=8 * per_row) == 8
    assert measure.evaluation_batch([conv], row, budget=8 * per_row - 1) == 4


def test_error_on_and_compare_on_evaluate_in_batches_that_fit(monkeypatch):
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(6, 300), nn.ReLU(), nn.Linear(300, 4)).double()
    g = nn.Sequential(nn.Linear(6, 4)).double()
    x = torch.randn(100, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (100,))
    full = measure.error_on(f, g, x, batch=measure.MAX_BATCH)
    full_on = measure.compare_on(f, g, x, y, batch=measure.MAX_BATCH)
    seen = []
    f[1].register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].shape[0]))
    monkeypatch.setattr(measure, "EVAL_BYTES", 16 * 300 * 2 * 8)  # 16 rows of the ReLU (in + out, float64)
    small = measure.error_on(f, g, x)
    assert max(seen[1:]) == 16 and len(seen) == 1 + 7  # the probe row, then 7 batches of <= 16 rows
    assert small.sup == pytest.approx(full.sup, rel=1e-12) and small.mean == pytest.approx(full.mean, rel=1e-12)
    seen.clear()
    on = measure.compare_on(f, g, x, y)
    assert max(seen[1:]) == 16
    assert (on.target_accuracy, on.ticket_accuracy) == (full_on.target_accuracy, full_on.ticket_accuracy)
