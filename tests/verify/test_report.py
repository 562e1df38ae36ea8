"""verify.report: option checks before any work, every reported number labelled with its unit, data that must fit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from strongticket.construct import pensia
from strongticket.errors import InputError
from strongticket.verify.report import FIELDS, certified_dominates, check_options, report_rows, verify_report


@pytest.fixture(scope="module")
def ticket():
    gen = torch.Generator().manual_seed(0)
    target = nn.Sequential(nn.Flatten(), nn.Linear(64, 5, bias=False), nn.ReLU(), nn.Linear(5, 3, bias=False))
    with torch.no_grad():
        for p in target.parameters():
            p.copy_((torch.rand(p.shape, generator=gen) - 0.5) * 0.2)
    return pensia.construct(target, eps=0.5, samples=8, strict=False, input_shape=(1, 8, 8), wider_pool=False)


GOOD = {"radius": 1.0, "count": 5, "restarts": 1, "steps": 2, "seed": 0}


@pytest.mark.parametrize("option, value, flag", [
    ("radius", -1.0, "--radius"), ("radius", 0.0, "--radius"), ("radius", math.nan, "--radius"),
    ("radius", math.inf, "--radius"), ("count", 0, "--count"), ("count", -5, "--count"), ("count", 2.5, "--count"),
    ("restarts", 0, "--restarts"), ("steps", -1, "--steps"), ("count", True, "--count"),
])
def test_out_of_range_options_are_refused_by_flag(option, value, flag):
    with pytest.raises(InputError, match=f"^{flag} must be .*, got {value!r}"):
        check_options(**{**GOOD, option: value})


def test_every_number_of_a_report_has_a_label_and_a_unit(ticket):
    report = verify_report(ticket, **GOOD, dataset="digits")
    numbers = {k for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numbers <= set(FIELDS), numbers - set(FIELDS)
    rows = report_rows(report)
    assert len(rows) == len(numbers) and all(label and unit for label, _, unit in rows)
    labels = [label for label, _, _ in rows]
    assert labels[:2] == [FIELDS["eps"].label, FIELDS["per_weight_eps"].label]  # what was asked comes first
    assert report["eps"] == 0.5 and certified_dominates(report) is True


def test_data_whose_inputs_do_not_fit_is_refused_naming_both_shapes():
    small = pensia.construct(nn.Sequential(nn.Linear(4, 2, bias=False)), per_weight_eps=0.1, samples=6, strict=False)
    with pytest.raises(InputError, match=r"^--data digits: the ticket takes inputs of shape \(4,\).*\(1, 8, 8\)"):
        verify_report(small, **GOOD, dataset="digits")


# ----- CNN tickets: l_inf checks -------------------------------------------------------------------------------

def _cnn_ticket(nonneg: bool, bias: bool = False):
    from strongticket.construct import cnn2l

    g = torch.Generator().manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1, bias=bias), torch.nn.ReLU(),
                            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 10, bias=bias))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.rand(p.shape, generator=g) - 0.5)
    return cnn2l.construct(m.eval(), per_weight_eps=0.01, samples=8, input_shape=(1, 8, 8), seed=1,
                           nonneg_input=nonneg, strict=False)


@pytest.mark.parametrize("nonneg,bias", [(False, False), (True, False), (True, True), (False, True)])
def test_cnn_ticket_certified_linf_bound_dominates_the_measured_linf_error(nonneg, bias):
    ticket = _cnn_ticket(nonneg, bias)
    report = verify_report(ticket, radius=2.0, count=300, seed=0, restarts=1, steps=10)
    assert report["empirical_box"] > 0  # the ticket is not exact: the check is not vacuous
    assert report["certified_linf"] >= max(report["empirical_box"], report["adversarial_box"])
    assert report["adversarial_box"] > 0
    assert certified_dominates(report) is True
    assert "certified" not in report  # the l2 recurrence does not apply to convolutions


def test_cnn_ticket_on_digits_reports_accuracy_and_data_errors_under_their_bound():
    ticket = _cnn_ticket(True)
    report = verify_report(ticket, count=50, dataset="digits")
    assert abs(report["ticket_accuracy"] - report["target_accuracy"]) <= 0.02
    assert 0 < report["empirical_data_linf"] <= report["certified_data_linf"]
    assert report["data_radius_linf"] == pytest.approx(1.0)


def test_cnn_certified_linf_uses_the_recorded_errors():
    """With the recorded per-weight errors zeroed, the bound collapses to 0 below the measured error: the bound
    is made of those errors, so a ticket whose errors were dropped cannot pass."""
    from strongticket.construct import cnn2l
    from strongticket.ticket import Ticket

    ticket = _cnn_ticket(False)
    zeroed = Ticket(ticket.spec, ticket.distribution, ticket.seed, ticket.masks, ticket.provenance,
                    {k: (torch.zeros_like(v) if k.startswith("errors.") else v) for k, v in ticket.arrays.items()})
    assert cnn2l.certified_linf(zeroed, 1.0).bound == 0.0
    assert cnn2l.certified_linf(ticket, 1.0).bound > 0.0


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_lplus1_ticket_is_checked_in_linf_under_its_certified_bound(act):
    from strongticket.construct import lplus1

    g = torch.Generator().manual_seed(2)
    m = nn.Sequential(nn.Linear(4, 5, bias=False), getattr(nn, {"tanh": "Tanh", "relu": "ReLU"}[act])(),
                      nn.Linear(5, 3, bias=False))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_((torch.rand(p.shape, generator=g) - 0.5) * 0.6)
    ticket = lplus1.construct(m.eval(), eps=0.01, rho=12, seed=0)
    report = verify_report(ticket, radius=1.0, count=300, seed=0)
    assert 0 < report["empirical_box"] <= report["certified_linf"]
    assert certified_dominates(report) is True


STAGES = ("regenerating", "sampled errors", "adversarial search", "certified bound", "target and ticket on")


def _stage_order(heard: list[str]) -> list[int]:
    """Index in ``heard`` of the first message of each stage (a stage never heard fails the test)."""
    return [next(i for i, m in enumerate(heard) if m.startswith(stage)) for stage in STAGES]


def test_progress_names_every_stage_in_order_and_changes_no_number(ticket):
    """``log`` hears each long stage as it starts (the CLI shows them as a status line); the report is the same
    with and without it."""
    heard: list[str] = []
    report = verify_report(ticket, **GOOD, dataset="digits", log=heard.append)
    order = _stage_order(heard)
    assert order == sorted(order)
    assert report == verify_report(ticket, **GOOD, dataset="digits")


def test_progress_of_an_linf_ticket_names_every_stage_in_order():
    heard: list[str] = []
    verify_report(_cnn_ticket(True, bias=True), count=20, restarts=1, steps=2, dataset="digits", log=heard.append)
    order = _stage_order(heard)
    assert order == sorted(order)
