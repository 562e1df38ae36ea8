"""``strongticket demo --quick --json``: fast, one JSON object, every weight within eps, plot and ticket written."""

from __future__ import annotations

import json

import pytest

from strongticket.cli.app import main
from strongticket.ticket import Ticket


@pytest.mark.slow
def test_quick_demo_emits_json_with_every_weight_within_eps(tmp_path, capsys):
    try:
        main(["demo", "--quick", "--json", "--seed", "0", "--out", str(tmp_path / "demo")])
    except SystemExit as exc:
        assert not exc.code
    out = capsys.readouterr().out
    summary = json.loads(out)  # one JSON object and nothing else on stdout
    assert summary["seed"] == 0 and summary["per_weight_eps"] == 0.01
    assert summary["random_network"]["samples_per_weight"] == 21
    assert summary["random_network"]["block_size"] > 2 * 21
    assert 0.5 < summary["target"]["test_accuracy"] <= 1
    for objective in ("min_error", "sparsest"):
        rep = summary["tickets"][objective]
        assert rep["weights_above_eps"] == 0 and rep["max_per_weight_error"] <= 0.01
        assert rep["certified"] >= max(rep["empirical_sphere"], rep["empirical_ball"], rep["adversarial"])
        assert abs(rep["ticket_accuracy"] - summary["target"]["test_accuracy"]) <= 0.02
        assert 0 < rep["kept"] < rep["params"]
    assert summary["tickets"]["sparsest"]["kept"] <= summary["tickets"]["min_error"]["kept"]
    cnn = summary["cnn"]
    assert cnn["weights_above_eps"] == 0 and abs(cnn["ticket_accuracy"] - cnn["target_accuracy"]) <= 0.02
    assert cnn["certified_data_linf"] >= cnn["empirical_data_linf"] and cnn["certified_linf"] >= cnn["empirical_box"]
    deep = summary["lplus1"]
    assert deep["depth"] == 3 and deep["certified_data_linf"] >= deep["empirical_data_linf"]
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 1000
    ticket = Ticket.load(tmp_path / "demo" / "ticket")
    assert ticket.provenance["samples_per_weight"] == 21


def test_demo_refuses_to_replace_the_users_plot_before_any_work(tmp_path, capsys):
    (tmp_path / "demo.png").write_bytes(b"the user's figure")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--quick", "--json", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and err.count("\n") == 1 and "pass --overwrite" in err
    assert (tmp_path / "demo.png").read_bytes() == b"the user's figure" and len(list(tmp_path.iterdir())) == 1
