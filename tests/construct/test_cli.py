"""The construct/verify commands: a ticket directory from a zoo checkpoint, one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

try:
    from strongticket.cli.app import main
except ImportError:  # another command group not written yet: drive ours through the same error handling
    import sys

    import typer

    from strongticket.cli import construct as cli
    from strongticket.errors import StrongTicketError

    _app = typer.Typer(pretty_exceptions_enable=False)
    _app.command("construct")(cli.construct)
    _app.command("verify")(cli.verify)

    def main(argv):
        try:
            _app(args=argv, prog_name="strongticket")
        except (StrongTicketError, ValueError, FileExistsError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)


def _run(argv, capsys):
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def checkpoint(tmp_path):
    from strongticket.nets.zoo import build_model

    m = build_model("lenet300100", num_classes=3, in_channels=1, image_size=2, width=0.02, bias=False, seed=0)
    state = {k: v * 0.3 for k, v in m.state_dict().items()}
    path = tmp_path / "target.safetensors"
    save_file(state, str(path))
    return path


ZOO = ["--model", "lenet300100", "--num-classes", "3", "--image-size", "2", "--width", "0.02"]


def test_construct_then_verify_json(tmp_path, checkpoint, capsys):
    code, out, err = _run(["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(checkpoint),
                           "--per-weight-eps", "0.05", "--samples", "6", "--no-strict", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["kept"] > 0 and (tmp_path / "t" / "ticket.json").is_file()
    code, out, err = _run(["verify", str(tmp_path / "t"), "--count", "100", "--restarts", "1", "--steps", "5",
                           "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["certified"] >= max(rep["empirical_sphere"], rep["adversarial"])


@pytest.mark.parametrize("extra, message", [
    (["--per-weight-eps", "0", "--samples", "4"], "in (0, 1)"),
    (["--per-weight-eps", "1e-5", "--samples", "2"], "samples per weight"),
    (["--per-weight-eps", "0.05", "--samples", "6", "--block-size", "6"], "fewer than n = 6"),
])
def test_bad_construct_input_is_one_line(tmp_path, checkpoint, capsys, extra, message):
    code, out, err = _run(["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(checkpoint), *extra],
                          capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "t").exists()


def test_checkpoint_that_does_not_fit_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    save_file({"1.weight": torch.zeros(2, 2)}, str(bad))
    code, _, err = _run(["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(bad), "--per-weight-eps",
                         "0.1", "--samples", "4"], capsys)
    assert code == 2 and "does not fit" in err


def test_verify_damaged_ticket_is_one_line(tmp_path, capsys):
    (tmp_path / "t").mkdir()
    code, _, err = _run(["verify", str(tmp_path / "t")], capsys)
    assert code == 2 and "ticket.json is missing" in err
