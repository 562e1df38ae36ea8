"""The demo's CNN part: a trained digits CNN pruned from a random CNN, every layer and bias, checked in l_inf."""

from __future__ import annotations

import json

import pytest

from strongticket.demo import check_demo_output, digits_cnn, run_cnn_part
from strongticket.errors import InputError
from strongticket.train.data import load_dataset


def test_digits_cnn_is_a_function_of_its_seed():
    a, b = digits_cnn(2, 5), digits_cnn(2, 5)
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters()))
    assert any((p != q).any() for p, q in zip(a.parameters(), digits_cnn(2, 6).parameters()))


def test_cnn_part_ticket_keeps_the_targets_accuracy_within_its_certified_bound():
    report = run_cnn_part(load_dataset("digits"), channels=2, steps=40, per_weight_eps=0.01, samples=16, count=50,
                          seed=0)
    assert report["weights_above_eps"] == 0 and report["max_per_weight_error"] <= 0.01
    assert abs(report["ticket_accuracy"] - report["target_accuracy"]) <= 0.02
    assert 0 < report["empirical_data_linf"] <= report["certified_data_linf"]
    assert report["target_accuracy"] > 0.5  # trained: the check is about a real target


def test_lplus1_part_is_one_layer_deeper_than_its_target_and_within_its_bound():
    from strongticket.demo import run_lplus1_part

    report = run_lplus1_part(load_dataset("digits"), hidden=16, steps=300, rho=15, eps=0.01, count=50, seed=0)
    assert report["depth"] == report["target_depth"] + 1
    assert abs(report["ticket_accuracy"] - report["target_accuracy"]) <= 0.02
    assert 0 < report["empirical_data_linf"] <= report["certified_data_linf"]


def test_demo_output_replaces_its_own_plot_but_never_the_users_unasked(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.png").write_bytes(b"the user's figure")
    with pytest.raises(InputError, match="demo.png' already exists; pass --overwrite"):
        check_demo_output(out)
    check_demo_output(out, overwrite=True)
    (out / "ticket").mkdir()
    (out / "ticket" / "ticket.json").write_text(json.dumps({"format": "strongticket-ticket"}))
    check_demo_output(out)  # a previous demo's directory: rerunning the demo replaces its own plot
    (out / "demo.png").unlink()
    (out / "demo.png").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        check_demo_output(out, overwrite=True)
