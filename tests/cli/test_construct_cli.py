"""``strongticket construct``: a ticket directory from a zoo checkpoint; warnings of --no-strict; --overwrite."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from strongticket.ticket import Ticket
from tests.cli.ticket_helpers import ZOO, run, write_checkpoint


def test_construct_writes_a_ticket_and_one_json_object(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "target.safetensors")
    code, out, err = run(["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(ckpt), "--per-weight-eps",
                          "0.05", "--samples", "6", "--no-strict", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["kept"] > 0 and summary["samples_per_weight"] == 6
    assert Ticket.load(tmp_path / "t").provenance["samples_per_weight"] == 6


def test_no_strict_misses_are_warned_on_stderr_and_recorded(tmp_path, capsys):
    # Weights up to ~1.5 with n = 6: some cannot be reached within eps' = 0.01 by products of U[-1, 1] draws.
    ckpt = write_checkpoint(tmp_path / "big.safetensors", scale=3.0)
    code, out, err = run(["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(ckpt), "--per-weight-eps",
                          "0.01", "--samples", "6", "--no-strict", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["weights_above_eps"] > 0
    assert summary["warnings"] and any("miss" in w for w in summary["warnings"])
    warned = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warned) == len(summary["warnings"])


def test_overwrite_replaces_a_ticket_directory(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "target.safetensors")
    argv = ["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(ckpt), "--per-weight-eps", "0.05",
            "--samples", "6", "--no-strict", "--json"]
    assert run(argv + ["--seed", "1"], capsys)[0] == 0
    code, _, err = run(argv + ["--seed", "2"], capsys)
    assert code == 2 and "--overwrite" in err  # a ticket is there: refused without --overwrite
    code, _, err = run(argv + ["--seed", "2", "--overwrite"], capsys)
    assert code == 0, err
    assert Ticket.load(tmp_path / "t").seed == 2


def test_checkpoint_that_does_not_fit_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    save_file({"1.weight": torch.zeros(2, 2)}, str(bad))
    code, _, err = run(["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(bad), "--per-weight-eps",
                        "0.1", "--samples", "4"], capsys)
    assert code == 2 and "does not fit" in err and not (tmp_path / "t").exists()


def test_overwrite_of_a_foreign_directory_is_refused_before_the_target_is_loaded(tmp_path, capsys, monkeypatch):
    import strongticket.cli.construct as cli

    def never(*args, **kwargs):
        raise AssertionError("the target was loaded before OUT was checked")

    monkeypatch.setattr(cli, "load_target", never)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("years of work")
    ckpt = write_checkpoint(tmp_path / "target.safetensors")
    code, _, err = run(["construct", str(tmp_path / "mine"), *ZOO, "--checkpoint", str(ckpt), "--per-weight-eps",
                        "0.05", "--samples", "6", "--overwrite"], capsys)
    assert code == 2 and err.startswith("error: OUT") and "did not write" in err
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "years of work"


def test_the_reference_first_layer_reaches_lplus1_and_is_refused_elsewhere(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "target.safetensors")
    base = ["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(ckpt), "--method", "lplus1", "--eps", "0.05",
            "--rho", "8", "--no-strict", "--json", "--reference-first-layer"]
    code, out, err = run(base, capsys)
    assert code == 0, err
    assert Ticket.load(tmp_path / "t").provenance["lplus1"]["reference_first_layer"] is True
    code, _, err = run(["construct", str(tmp_path / "p"), *ZOO, "--checkpoint", str(ckpt), "--per-weight-eps", "0.05",
                        "--reference-first-layer"], capsys)
    assert code == 2 and "--reference-first-layer does not apply to --method pensia" in err
