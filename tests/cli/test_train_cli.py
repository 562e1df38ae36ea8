"""Tests of ``strongticket train`` and ``strongticket report`` (through a Typer app holding just these commands)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from strongticket.cli import train as train_cli
from strongticket.errors import InputError

app = typer.Typer()
app.command("train")(train_cli.train)
app.command("report")(train_cli.report)
runner = CliRunner()

BASE = ["train", "--model", "lenet300100", "--dataset", "digits", "--epochs", "1", "--width", "0.25",
        "--train-subset", "256", "--device", "cpu"]


def test_train_json_prints_one_object_and_writes_a_run(tmp_path: Path) -> None:
    res = runner.invoke(app, [*BASE, "--method", "random", "--density", "0.3", "--out", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["density"] == pytest.approx(0.3, abs=1e-3) and out["run_dir"] == str(tmp_path / "r")
    config = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert config["prune"]["method"] == "random" and config["model"]["width"] == 0.25


def test_edge_popup_gets_its_paper_defaults(tmp_path: Path) -> None:
    res = runner.invoke(app, [*BASE, "--method", "edge-popup", "--density", "0.5", "--out", str(tmp_path / "e"),
                              "--json"])
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "e" / "config.json").read_text())["config"]
    assert config["model"]["init"] == "signed_constant" and config["prune"]["scope"] == "layerwise"


@pytest.mark.parametrize("args,match", [(["--method", "nope"], "valid methods"),
                                        (["--method", "random", "--density", "0"], r"\(0, 1\]"),
                                        (["--method", "dense", "--model", "vgg"], "valid models")])
def test_bad_arguments_raise_input_errors(args: list[str], match: str, tmp_path: Path) -> None:
    res = runner.invoke(app, [*BASE, *args, "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)
    assert re.search(match, str(res.exception))


def test_report_tabulates_and_plots(tmp_path: Path) -> None:
    for method, d in [("random", 0.3), ("snip", 0.3), ("snip", 0.1)]:
        assert runner.invoke(app, [*BASE, "--method", method, "--density", str(d),
                                   "--out", str(tmp_path / "runs" / f"{method}{d}"), "--json"]).exit_code == 0
    res = runner.invoke(app, ["report", str(tmp_path / "runs"), "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("\n") == 5 and "| snip |" in res.stdout
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["report", str(tmp_path / "runs"), "--format", "csv", "--out", str(tmp_path / "t.csv")])
    assert (tmp_path / "t.csv").read_text().startswith("run,method,model,width,dataset,density")


def test_report_without_runs_is_an_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert isinstance(res.exception, InputError)


@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_report_never_replaces_an_existing_file_unasked(tmp_path: Path, option: str) -> None:
    assert runner.invoke(app, [*BASE, "--out", str(tmp_path / "runs" / "r"), "--json"]).exit_code == 0
    mine = tmp_path / "model.safetensors"
    mine.write_bytes(b"the user's checkpoint")
    res = runner.invoke(app, ["report", str(tmp_path / "runs"), option, str(mine)])
    assert isinstance(res.exception, InputError) and "pass --overwrite" in str(res.exception)
    assert mine.read_bytes() == b"the user's checkpoint"
    res = runner.invoke(app, ["report", str(tmp_path / "runs"), option, str(tmp_path), "--overwrite"])
    assert isinstance(res.exception, InputError) and "is a directory" in str(res.exception)
    res = runner.invoke(app, ["report", str(tmp_path / "runs"), option, str(mine), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert mine.read_bytes() != b"the user's checkpoint"


def test_report_checks_the_page_before_writing_anything(tmp_path: Path) -> None:
    assert runner.invoke(app, [*BASE, "--out", str(tmp_path / "runs" / "r"), "--json"]).exit_code == 0
    notes = tmp_path / "notes.md"
    notes.write_text("# My notes\n")
    res = runner.invoke(app, ["report", str(tmp_path / "runs" / "r"), "--page", str(notes), "--export",
                              str(tmp_path / "exported"), "--out", str(tmp_path / "table.md")])
    assert isinstance(res.exception, InputError) and "did not write" in str(res.exception)
    assert notes.read_text() == "# My notes\n"
    assert not (tmp_path / "exported").exists() and not (tmp_path / "table.md").exists()


def test_a_results_page_holds_comparisons_of_different_datasets(tmp_path: Path) -> None:
    # each comparison is its own section; only a merged table needs one task (the committed exports: MNIST and
    # Fashion-MNIST)
    results = Path(__file__).resolve().parents[2] / "experiments" / "results"
    both = [str(results / "pensia_exp1_compare"), str(results / "lenet5_fashion")]
    page = tmp_path / "results.md"
    res = runner.invoke(app, ["report", *both, "--page", str(page)])
    assert res.exit_code == 0, res.output
    text = page.read_text()
    assert "## Pensia et al. 2020 exp. 1: FC2 on MNIST" in text and "## LeNet-5 on Fashion-MNIST" in text
    for extra in (["--out", str(tmp_path / "t.md")], []):
        res = runner.invoke(app, ["report", *both, *extra])
        assert isinstance(res.exception, InputError) and "different datasets" in str(res.exception)


def test_report_of_an_empty_path_is_one_line_not_the_current_folder(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"method": "dense", "model": "fc2", "dataset": "digits",
                                                  "density": 1.0, "test_accuracy": 0.9}))
    monkeypatch.chdir(tmp_path)  # a run here: scanning "" as "." would tabulate it
    res = runner.invoke(app, ["report", ""])
    assert isinstance(res.exception, InputError) and "an empty path names no run" in str(res.exception)
    assert runner.invoke(app, ["report", "."]).exit_code == 0
