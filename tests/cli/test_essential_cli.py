"""Tests of ``strongticket essential`` (through a Typer app holding just this command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from strongticket.cli import essential as essential_cli
from strongticket.errors import InputError
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.run import train_run

app = typer.Typer()
app.command("essential")(essential_cli.essential)


@app.callback()
def _root() -> None:
    """A group, so that the command is invoked by name as under ``strongticket``."""


runner = CliRunner()

TOML = """seed = 1
[data]
dataset = "digits"
batch_size = 64
[model]
model = "lenet300100"
width = 0.25
[optim]
lr = 0.05
momentum = 0.9
epochs = 2
[prune]
method = "{method}"
"""


def _config(method: str = "dense", density: float = 1.0, epochs: int = 1) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="digits", batch_size=64), model=ModelConfig(model="lenet300100",
                     width=0.25), optim=OptimConfig(lr=0.05, momentum=0.9, epochs=epochs),
                     prune=PruneConfig(method=method, density=density), seed=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("essential-cli")
    train_run(_config(), root / "dense", device="cpu")
    train_run(_config("magnitude", 0.3), root / "magnitude", device="cpu")
    (root / "dense.toml").write_text(TOML.format(method="dense"))
    (root / "snip.toml").write_text(TOML.format(method="snip"))
    return {"dense": root / "dense", "magnitude": root / "magnitude", "toml": root / "dense.toml",
            "snip": root / "snip.toml"}


def _fails(args: list[str], match: str) -> None:
    res = runner.invoke(app, ["essential", *args])
    assert res.exit_code != 0 and isinstance(res.exception, InputError), res.output
    assert match in str(res.exception) and "\n" not in str(res.exception), str(res.exception)


def test_bad_arguments_are_one_line_errors_and_write_nothing(runs: dict[str, Path], tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "o")]
    dense = ["--run", str(runs["dense"])]
    _fails([*dense, "--pattern", "5:4", *out], "--pattern must be N:M with integers 1 <= N <= M")
    _fails([*dense, "--pattern", "2/4", *out], "got '2/4'")
    _fails(out, "exactly one of --run RUN_DIR")
    _fails([*dense, "--config", str(runs["toml"]), *out], "got both")
    _fails([*dense, "--epochs", "3", *out], "--epochs applies to --config only")
    _fails([*dense, "--sparsities", "0.5,1.2", *out], "--sparsities must lie in [0, 1)")
    _fails([*dense, "--max-drop", "-1", *out], "--max-drop must be in [0, 100)")
    _fails(["--run", str(runs["magnitude"]), *out], "is a magnitude run")
    _fails(["--run", str(tmp_path / "nothing"), *out], "must be a finished dense run directory")
    _fails(["--run", str(tmp_path), *out], "no config.json")
    _fails(["--config", str(runs["snip"]), *out], "must describe a dense run")
    _fails(["--config", str(tmp_path / "missing.toml"), *out], "cannot be read")
    assert not (tmp_path / "o").exists()


def test_a_missing_model_file_is_named(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(runs["dense"], broken)
    (broken / "model.safetensors").unlink()
    _fails(["--run", str(broken), "--out", str(tmp_path / "o")], "has no model.safetensors")


def test_user_files_are_never_replaced(runs: dict[str, Path], tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        _fails(["--run", str(runs["dense"]), "--out", str(mine), *extra], "did not write")
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1
    afile = tmp_path / "afile"
    afile.write_text("x")
    _fails(["--run", str(runs["dense"]), "--out", str(afile), "--overwrite"], "is a file")
    assert afile.read_text() == "x"


def test_a_run_end_to_end_with_json_then_overwrite(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "es"
    args = ["essential", "--run", str(runs["dense"]), "--out", str(out), "--sparsities", "0:0.9:0.1", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert rec["out"] == str(out) and rec["source"]["kind"] == "run" and len(rec["epochs"]) == 1
    assert rec["summary"]["dense_accuracy"] == rec["source"]["run_test_accuracy"]
    assert sorted(p.name for p in out.iterdir()) == ["essential.json", "essential.md", "essential.png"]
    assert (out / "essential.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "essential.json").read_text())
    assert saved["format"] == "strongticket-essential" and saved["patterns"] == ["2:4", "4:8"]
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "already exists" in str(res.exception)
    res = runner.invoke(app, [*args, "--overwrite", "--pattern", "1:4"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "essential.json").read_text())["patterns"] == ["1:4"]


def test_a_config_is_trained_and_every_snapshot_swept(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "track"
    res = runner.invoke(app, ["essential", "--config", str(runs["toml"]), "--epochs", "1", "--snapshots-per-epoch",
                              "2", "--sparsities", "0:0.8:0.2", "--pattern", "2:4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "essential.json").read_text())
    # digits: 1437 training images, 23 steps of 64 per epoch; snapshots after steps 12 and 23
    assert [s["step"] for s in saved["snapshots"]] == [12, 23]
    assert [s["epoch"] for s in saved["snapshots"]] == pytest.approx([12 / 23, 1.0])
    table = (out / "essential.md").read_text()
    assert "| epoch | step | dense acc |" in table and "| 2:4 |" in table and "train" in saved["seconds"]
