"""``strongticket verify``: JSON report, and a table whose rows read with units and show the requested eps."""

from __future__ import annotations

import json

import pytest

from strongticket.verify.report import FIELDS
from tests.cli.ticket_helpers import ZOO, run, write_checkpoint


@pytest.fixture()
def ticket_dir(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "target.safetensors")
    code, _, err = run(["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(ckpt), "--eps", "0.5",
                        "--samples", "6", "--no-strict", "--json"], capsys)
    assert code == 0, err
    return tmp_path / "t"


def test_verify_json_bound_dominates_measured(ticket_dir, capsys):
    code, out, err = run(["verify", str(ticket_dir), "--count", "100", "--restarts", "1", "--steps", "5", "--json"],
                         capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["eps"] == 0.5 and 0 < rep["per_weight_eps"] < 0.5
    assert rep["certified"] >= max(rep["empirical_sphere"], rep["empirical_ball"], rep["adversarial"])


def test_verify_table_has_labels_units_and_the_requested_eps(ticket_dir, capsys):
    code, out, err = run(["verify", str(ticket_dir), "--count", "50", "--restarts", "1", "--steps", "3"], capsys)
    assert code == 0, err
    for key in ("eps", "per_weight_eps", "certified", "adversarial", "density"):
        assert FIELDS[key].label in out
    assert "output l2" in out and "fraction" in out
    raw_keys = ("empirical_sphere", "max_per_weight_error", "per_weight_eps")
    assert not any(k in out for k in raw_keys)
    assert "certified bound dominates every measured error" in out


def test_verify_damaged_ticket_is_one_line(tmp_path, capsys):
    (tmp_path / "t").mkdir()
    code, _, err = run(["verify", str(tmp_path / "t")], capsys)
    assert code == 2 and "ticket.json is missing" in err and err.count("\n") == 1
