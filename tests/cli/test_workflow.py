"""The whole path a user takes: train a target, construct a strong ticket from its checkpoint, verify it."""

from __future__ import annotations

import json

import pytest

from strongticket.cli.app import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_trained_checkpoint_becomes_a_verified_strong_ticket(tmp_path, capsys):
    run = _run(["train", "--model", "lenet300100", "--dataset", "digits", "--method", "dense", "--width", "0.25",
                "--epochs", "10", "--out", str(tmp_path / "run"), "--json"], capsys)
    built = _run(["construct", str(tmp_path / "ticket"), "--model", "lenet300100", "--width", "0.25",
                  "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--image-size", "8", "--bias",
                  "--per-weight-eps", "0.01", "--samples", "24", "--no-strict", "--json"], capsys)
    assert built["samples_per_weight"] == 24
    report = _run(["verify", str(tmp_path / "ticket"), "--data", "digits", "--count", "200", "--restarts", "2",
                   "--steps", "20", "--json"], capsys)
    assert report["target_accuracy"] == pytest.approx(run["test_accuracy"], abs=1e-9)
    assert abs(report["ticket_accuracy"] - report["target_accuracy"]) <= 0.01
    assert report["certified"] >= max(report["empirical_sphere"], report["empirical_ball"], report["adversarial"])
    assert report["certified_data"] >= report["empirical_data"]
