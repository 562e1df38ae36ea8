"""``strongticket verify scaling``: the structured width table/JSON/plot, one-line errors, and ``verify TICKET``
still checking a ticket through the same group."""

from __future__ import annotations

import json

import pytest
import typer

import strongticket.cli.app as app_module
from strongticket.cli import verify as verify_cli
from tests.cli.ticket_helpers import ZOO, run, write_checkpoint


@pytest.fixture()
def verify_group(monkeypatch):
    """The console entry point with ``verify`` registered as the group of :mod:`strongticket.cli.verify` (the
    registration the root app needs for ``verify scaling``), ``construct`` beside it."""
    root = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    root.add_typer(verify_cli.app, name="verify")
    root.command("construct")(app_module.construct_cli.construct)
    monkeypatch.setattr(app_module, "app", root)


def test_scaling_quick_json_has_rows_fits_and_the_theorem_exponent(verify_group, tmp_path, capsys):
    code, out, err = run(["verify", "scaling", "--quick", "--json", "--out", str(tmp_path / "s.json"),
                          "--plot", str(tmp_path / "s.png")], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert [r["dimension"] for r in res["rows"]] == [1, 4, 9]
    assert all(r["width"] and r["width"] <= 512 for r in res["rows"])
    assert res["theorem_exponent"] == 3 and isinstance(res["fits"][0]["exponent"], float)
    assert json.loads((tmp_path / "s.json").read_text()) == res
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_scaling_table_prints_the_fitted_exponent(verify_group, capsys):
    code, out, err = run(["verify", "scaling", "--quick", "--dims", "4,9"], capsys)
    assert code == 0, err
    assert "counting bound" in out and "fitted exponent of width vs D" in out and "MRSS theorem: 3" in out


@pytest.mark.parametrize("args, match", [(["--eps", "2"], "--eps"), (["--dims", "4,x"], "--dims"),
                                         (["--quantile", "1.5"], "--quantile"), (["--steps", "-1"], "--steps")])
def test_scaling_bad_options_are_one_line_errors_before_any_work(verify_group, tmp_path, capsys, args, match):
    code, out, err = run(["verify", "scaling", "--quick", "--out", str(tmp_path / "s.json"), *args], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and match in err and err.count("\n") == 1
    assert not (tmp_path / "s.json").exists()


def test_verify_ticket_still_runs_as_the_group_default(verify_group, tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "target.safetensors")
    code, _, err = run(["construct", str(tmp_path / "t"), *ZOO, "--checkpoint", str(ckpt), "--eps", "0.5",
                        "--samples", "6", "--no-strict", "--json"], capsys)
    assert code == 0, err
    code, out, err = run(["verify", str(tmp_path / "t"), "--count", "50", "--restarts", "1", "--steps", "3",
                          "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["eps"] == 0.5
    code, out, err = run(["verify", str(tmp_path / "missing")], capsys)
    assert code == 2 and "missing" in err


@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_scaling_never_replaces_an_existing_file_unasked(verify_group, tmp_path, capsys, option):
    mine = tmp_path / "notes.txt"
    mine.write_text("the user's notes")
    code, out, err = run(["verify", "scaling", "--quick", "--dims", "1", option, str(mine)], capsys)
    assert code == 2 and out == "" and "pass --overwrite" in err and err.count("\n") == 1
    assert mine.read_text() == "the user's notes"
    code, _, err = run(["verify", "scaling", "--quick", "--dims", "1", option, str(mine), "--overwrite"], capsys)
    assert code == 0, err
    assert mine.read_bytes() != b"the user's notes"


def test_scaling_help_shows_every_default(verify_group, capsys):
    code, out, _ = run(["verify", "scaling", "--help"], capsys)
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    for name, value in verify_cli.FULL.items():
        assert f"[default: {value}]" in text, name
